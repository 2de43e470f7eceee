//! Forward auth against the binary, with the request shapes Traefik's
//! `ForwardAuth` and Envoy's `ext_authz` (HTTP service) send, replayed by
//! hand (nginx's is the real nginx of the conformance matrix): the verdict,
//! the principal's headers, and refusals passed on as they are.

mod common;

use common::{exchange, free_port, start};

#[tokio::test]
async fn traefik_envoy_and_nginx_shapes_get_the_verdict_their_gateway_expects() {
    let port = free_port();
    let (_server, key) = start(port);
    let base = format!("http://127.0.0.1:{port}");
    let bearer = format!("Bearer {key}");

    // Traefik: a GET to the auth address, the held request in X-Forwarded-*,
    // the client's headers copied.
    let traefik = |method: &'static str, uri: &'static str| {
        vec![("x-forwarded-method", method), ("x-forwarded-uri", uri), ("x-forwarded-proto", "https")]
    };
    let mut headers = traefik("POST", "/api/public/agents/demo-agent/chat?api_key=ignored");
    headers.push(("authorization", &bearer));
    headers.push(("x-agx-org", "forged-org"));
    // nginx's headers, sent by the client and passed on by Traefik: not read here.
    headers.push(("x-original-method", "GET"));
    headers.push(("x-original-uri", "/api/public/agents/demo-agent"));
    let (status, h, body) = exchange("GET", &format!("{base}/forward-auth/traefik"), &headers, "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(h["x-agx-org"], "demo-org", "the verdict's org, not a client's header");
    assert_eq!(h["x-agx-scopes"], "*");
    assert_eq!(h["x-agx-mode"], "live");
    assert!(h["x-agx-key-id"].to_str().unwrap().starts_with("key_"));
    assert_eq!(h["ratelimit-policy"], r#""chat";q=60;w=60"#);
    assert!(!format!("{h:?}").contains(&key), "the key is never in the answer");
    assert!(body.is_empty());

    // A refusal is the contract's response, for Traefik to hand on.
    let mut headers = traefik("GET", "/api/public/agents/no-such-agent");
    headers.push(("authorization", &bearer));
    let (status, h, body) = exchange("GET", &format!("{base}/forward-auth/traefik"), &headers, "").await;
    assert_eq!(
        (status, body.as_str()),
        (404, r#"{"error":{"code":"AGENT_NOT_FOUND","message":"The agent does not exist"}}"#)
    );
    assert_eq!(h["content-type"], "application/json");
    let (status, h, _) =
        exchange("GET", &format!("{base}/forward-auth/traefik"), &traefik("GET", "/api/public/agents/demo-agent"), "")
            .await;
    assert_eq!(status, 401);
    assert_eq!(h["www-authenticate"], r#"Bearer realm="agentix""#);

    // Envoy: the held request's own method, its path after the prefix.
    let chat = format!("{base}/forward-auth/envoy/api/public/agents/demo-agent/chat");
    let (status, h, _) = exchange("POST", &chat, &[("authorization", &bearer)], "").await;
    assert_eq!(status, 200);
    assert_eq!(h["x-agx-org"], "demo-org");
    let (status, _, body) = exchange("GET", &chat, &[("authorization", &bearer)], "").await;
    assert_eq!(
        (status, body.as_str()),
        (404, r#"{"error":{"code":"NOT_FOUND","message":"No such route"}}"#),
        "an undeclared method on a declared path: the key is checked, then refused"
    );
    // Paths a loose upstream router could read as the chat route.
    for path in ["/chat/", "/CHAT", "/chat;x=1", "/x/../chat"] {
        let loose = format!("{base}/forward-auth/envoy/api/public/agents/demo-agent{path}");
        let (status, _, _) = exchange("POST", &loose, &[("authorization", &bearer)], "").await;
        assert_eq!(status, 404, "{path}");
        let (status, _, _) = exchange("POST", &loose, &[], "").await;
        assert_eq!(status, 401, "{path} without a key");
    }
    let bad = "agx_live_000000000000000000000000000000000";
    let (status, _, body) = exchange("POST", &chat, &[("x-api-key", bad)], "").await;
    assert_eq!((status, body.contains("INVALID_API_KEY")), (401, true));
    assert!(!body.contains(bad));

    // nginx: every refusal a 403 with the real answer in headers.
    let nginx = [("x-original-method", "GET"), ("x-original-uri", "/api/public/agents/no-such-agent")];
    let mut headers = nginx.to_vec();
    headers.push(("authorization", &bearer));
    let (status, h, body) = exchange("GET", &format!("{base}/forward-auth/nginx"), &headers, "").await;
    assert_eq!((status, body.as_str()), (403, ""));
    assert_eq!(h["x-agx-status"], "404");
    assert!(h["x-agx-body"].to_str().unwrap().contains("AGENT_NOT_FOUND"));

    // A CORS preflight is not ours to judge: 200 with nothing.
    let preflight = [("access-control-request-method", "POST"), ("origin", "https://example.com")];
    let (status, h, _) = exchange("OPTIONS", &chat, &preflight, "").await;
    assert_eq!(status, 200);
    assert!(h.get("x-agx-org").is_none() && h.get("ratelimit").is_none());

    // A gateway that does not say which request it holds: 400, fail closed,
    // and nothing it sent in the answer.
    let (status, _, body) =
        exchange("GET", &format!("{base}/forward-auth/traefik"), &[("x-forwarded-uri", "/api/public/<script>")], "")
            .await;
    assert_eq!(status, 400);
    assert!(!body.contains("script"), "{body}");
}

#[tokio::test]
async fn a_host_route_table_is_judged_and_the_agentix_api_is_not_served() {
    let dir = std::env::temp_dir().join(format!("agx-routes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("routes.toml");
    std::fs::write(
        &file,
        r#"
        [[route]]
        method = "POST"
        path = "/v1/agents/{agentId}/run"
        scope = "run"
        class = "run"

        [[class]]
        name = "run"
        per_minute = 2
        "#,
    )
    .unwrap();
    let port = free_port();
    let (_server, key) = common::start_with(port, None, &[("AGX_ROUTES", file.to_str().unwrap())]);
    let key = key.expect("the memory store's demo key");
    let base = format!("http://127.0.0.1:{port}");
    let bearer = format!("Bearer {key}");
    let run =
        [("x-original-method", "POST"), ("x-original-uri", "/v1/agents/demo-agent/run"), ("authorization", &bearer)];
    let nginx = format!("{base}/forward-auth/nginx");
    let (status, h, _) = exchange("GET", &nginx, &run, "").await;
    assert_eq!(status, 200);
    assert_eq!(h["ratelimit-policy"], r#""run";q=2;w=60"#, "the file's class and quota");
    exchange("GET", &nginx, &run, "").await;
    let (status, h, _) = exchange("GET", &nginx, &run, "").await;
    assert_eq!((status, h["x-agx-status"].to_str().unwrap()), (403, "429"), "the third in a minute is over the quota");
    let unknown =
        [("x-original-method", "POST"), ("x-original-uri", "/v1/agents/nobody/run"), ("authorization", &bearer)];
    let (_, h, _) = exchange("GET", &nginx, &unknown, "").await;
    assert_eq!(h["x-agx-status"], "404", "{{agentId}} in a host route turns on the agent checks");

    let (status, _, _) =
        exchange("GET", &format!("{base}/api/public/agents/demo-agent"), &[("authorization", &bearer)], "").await;
    assert_eq!(status, 404, "no Agentix handlers behind a host's table");
    std::fs::remove_dir_all(&dir).ok();
}
