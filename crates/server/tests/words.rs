//! Word timestamps through the server over loopback HTTP (tiny.en, JFK):
//! `timestamp_granularities[]=word` in verbose_json gives OpenAI's top-level `words`, alone or
//! beside the segments.

mod common;

use common::*;

async fn verbose(server: &TestServer, audio: &[u8], granularities: &[&str]) -> serde_json::Value {
    let mut fields = vec![("response_format", "verbose_json")];
    fields.extend(
        granularities
            .iter()
            .map(|g| ("timestamp_granularities[]", *g)),
    );
    let r = post(
        server,
        "/v1/audio/transcriptions",
        form(audio, "jfk.wav", &fields),
    )
    .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_granularity_returns_words() {
    let Some(path) = clip("jfk.wav") else { return };
    let audio = std::fs::read(path).unwrap();
    let server = TestServer::start(config()).await;

    let v = verbose(&server, &audio, &["word"]).await;
    assert!(
        v.get("segments").is_none(),
        "only words were asked for: {v}"
    );
    let words = v["words"].as_array().expect("top-level words");
    let text: Vec<&str> = words.iter().map(|w| w["word"].as_str().unwrap()).collect();
    assert!(
        text.join(" ").contains("ask not what your country"),
        "{text:?}"
    );
    let mut last = 0.0;
    for w in words {
        let keys: Vec<&String> = w.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["end", "start", "word"], "{w}");
        let (start, end) = (w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap());
        assert!(last <= start && start <= end && end <= 11.0, "{w}");
        assert_eq!(w["word"].as_str().unwrap().trim(), w["word"], "{w}");
        last = start;
    }

    let both = verbose(&server, &audio, &["segment", "word"]).await;
    assert_eq!(both["words"], v["words"]);
    let segments = both["segments"].as_array().expect("segments too");
    assert!(!segments.is_empty());
    assert!(segments.iter().all(|s| s.get("words").is_none()));

    let segment_only = verbose(&server, &audio, &["segment"]).await;
    assert!(segment_only.get("words").is_none());
    assert!(segment_only["segments"].is_array());
}
