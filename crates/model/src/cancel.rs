//! Cancelling a transcription from another thread (a server whose client went away, a user who
//! pressed Ctrl-C). The decoder looks at the token between windows and between decoding steps.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A shared flag: cloning gives another handle on the same flag. A child token is cancelled
/// when it or any of its ancestors is, so one server-wide token can stop every request.
#[derive(Clone, Debug, Default)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    cancelled: AtomicBool,
    parent: Option<CancelToken>,
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// A new token that is also cancelled when `self` is.
    pub fn child(&self) -> CancelToken {
        CancelToken {
            inner: Arc::new(Inner {
                cancelled: AtomicBool::new(false),
                parent: Some(self.clone()),
            }),
        }
    }

    /// Asks every holder of this token (and of its children) to stop.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::Relaxed)
            || self.inner.parent.as_ref().is_some_and(|p| p.is_cancelled())
    }
}

#[cfg(test)]
mod tests {
    use super::CancelToken;

    #[test]
    fn children_see_their_parents_cancellation_but_not_the_reverse() {
        let root = CancelToken::new();
        let a = root.child();
        let b = root.child();
        a.cancel();
        assert!(a.is_cancelled() && !b.is_cancelled() && !root.is_cancelled());
        let a2 = a.clone();
        assert!(a2.is_cancelled(), "clones share the flag");
        root.cancel();
        assert!(b.is_cancelled());
    }
}
