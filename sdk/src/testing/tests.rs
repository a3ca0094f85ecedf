use std::time::Duration;

use super::*;
use crate::http::Request;

#[test]
fn requests_are_recorded_and_answered_in_order() {
    let host = StandIn::install();
    let mut n = 0;
    host.on_http(move |req| {
        n += 1;
        Ok(json_response(
            200,
            &serde_json::json!({"n": n, "url": req.url}),
        ))
    });
    for expected in [1, 2] {
        let answer: serde_json::Value = Request::get("https://api.example.com/v2/things")
            .credential("token")
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(answer["n"], expected);
    }
    let sent = host.requests();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].credential.as_deref(), Some("token"));
}

#[test]
fn without_answers_a_request_fails_and_says_how_to_set_them() {
    let _host = StandIn::install();
    let err = Request::get("https://api.example.com/x")
        .send()
        .unwrap_err();
    let text = format!("{err:?}");
    assert!(text.contains("StandIn::on_http"), "{text}");
}

#[test]
fn sleeping_moves_the_virtual_clock_so_polls_end_at_once() {
    let host = StandIn::install();
    let start = crate::time::now_ms();
    assert_eq!(start, EPOCH_MS);
    let never: Result<Option<()>, ()> =
        crate::time::poll(Duration::from_secs(5), Duration::from_secs(60), || Ok(None));
    assert_eq!(never, Ok(None));
    assert!(host.slept_ms() >= 60_000, "{}", host.slept_ms());
}

#[test]
fn logs_and_progress_are_kept_and_a_new_stand_in_starts_clean() {
    {
        let host = StandIn::install();
        crate::log::write(Level::Info, "created", &[("name", "web-1")]);
        crate::time::progress("waiting", 1, Some(3));
        assert_eq!(host.logs(), ["info created name=web-1"]);
        assert_eq!(host.progress(), [("waiting".to_string(), 1, Some(3))]);
    }
    let host = StandIn::install();
    assert!(host.logs().is_empty());
    assert!(host.requests().is_empty());
}

#[test]
fn artifacts_are_read_from_what_the_test_gave() {
    let host = StandIn::install();
    host.artifact(
        crate::Artifact {
            kind: crate::ArtifactKind::Script,
            digest: "d".into(),
            files: vec![crate::ArtifactFile {
                path: "index.js".into(),
                size: 5,
                sha256: "abc".into(),
            }],
        },
        &[("index.js", b"hello")],
    );
    assert_eq!(crate::artifact::read_to_end("index.js").unwrap(), b"hello");
    assert!(crate::artifact::read_to_end("missing.js").is_err());
    assert_eq!(
        crate::artifact::digest(
            "index.js",
            crate::artifact::DigestAlgorithm::Sha256,
            crate::artifact::DigestInput {
                base64_content: false,
                suffix: String::new()
            }
        )
        .unwrap(),
        "abc"
    );
}
