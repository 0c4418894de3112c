//! No library code: this crate holds the tests of `deploy/` (`tests/`), which check the files
//! that run `xdna-whisper batch` on Kubernetes, in a container and on Ray.
