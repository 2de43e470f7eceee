//! The extractor without the middleware fails closed.

use agx_auth_poem::Authenticated;
use poem::test::TestClient;
use poem::{Route, get, handler};

#[handler]
fn open(Authenticated(p): Authenticated) -> String {
    p.org().to_owned()
}

#[tokio::test]
async fn extractor_without_middleware_is_a_401() {
    let client = TestClient::new(Route::new().at("/open", get(open)));
    let resp = client.get("/open").send().await;
    resp.assert_status(poem::http::StatusCode::UNAUTHORIZED);
    resp.assert_header("www-authenticate", r#"Bearer realm="agentix""#);
    resp.assert_text(r#"{"error":{"code":"MISSING_API_KEY","message":"No API key provided in the request"}}"#).await;
}
