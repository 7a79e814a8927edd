//! The router without a socket (axum's model): the security middleware and a mutation,
//! driven with `tower::ServiceExt::oneshot`.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use base64::Engine;
use gosuv::{ServerConfig, Supervisor};
use gosuv_bin::server::api::router;
use gosuv_bin::server::security::{AllowList, Security, Transport};
use gosuv_bin::server::AppState;
use http_body_util::BodyExt;
use tower::ServiceExt;

fn state(dir: &std::path::Path, security: Security) -> AppState {
    let config = ServerConfig::defaults(dir);
    let file = gosuv_bin::server::ProgramsFile::new(config.include.clone(), config.dir.clone());
    file.loaded(&[], &[]);
    let mut options = gosuv_bin::server::supervisor_options(&config, &file);
    options.subreaper = false;
    options.kill_on_parent_death = true;
    let sup = Supervisor::new(options).unwrap();
    AppState::new(sup, config, security, vec!["test".into()], file)
}

async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, serde_json::Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

fn auth() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("u:p")
    )
}

#[tokio::test]
async fn auth_and_mutations_without_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let security = Security {
        credentials: Some(("u".into(), "p".into())),
        allow: None,
    };
    let st = state(dir.path(), security);
    let app = router(st.clone());

    let (status, body) = send(
        &app,
        Request::get("/api/status").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"].as_str().unwrap().contains("basic auth"));

    let req = Request::post("/api/programs")
        .header(header::AUTHORIZATION, auth())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"name": "one", "command": "true"}"#))
        .unwrap();
    let (status, body) = send(&app, req).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["state"], "stopped");
    let saved = std::fs::read_to_string(dir.path().join("programs.yml")).unwrap();
    assert!(saved.contains("name: one"), "{saved}");

    let req = Request::get("/api/programs/one")
        .header(header::AUTHORIZATION, auth())
        .body(Body::empty())
        .unwrap();
    let (status, body) = send(&app, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["command"], "true");

    let req = Request::post("/api/shutdown")
        .header(header::AUTHORIZATION, auth())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::empty())
        .unwrap();
    let (status, _) = send(&app, req).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(st.is_shutting_down());
    st.sup().shutdown().await;
}

#[tokio::test]
async fn an_allow_list_refuses_a_request_whose_peer_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let allow = AllowList::parse("127.0.0.1\n", std::path::Path::new("ipfile")).unwrap();
    let st = state(
        dir.path(),
        Security {
            credentials: None,
            allow: Some(allow),
        },
    );
    let app = router(st.clone()).layer(axum::Extension(Transport::Tcp));
    let (status, _) = send(
        &app,
        Request::get("/api/status").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    st.sup().shutdown().await;
}
