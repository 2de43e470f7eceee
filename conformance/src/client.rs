//! A plain HTTP/1.1 client over loopback that sends headers exactly as a case
//! builds them: repeated, oversized or not UTF-8.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client as HyperClient, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;

/// A response, whole.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Clone)]
pub struct Client {
    inner: HyperClient<HttpConnector, Full<Bytes>>,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    pub fn new() -> Self {
        let inner = HyperClient::builder(TokioExecutor::new()).pool_max_idle_per_host(64).build_http();
        Client { inner }
    }

    pub async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Reply, String> {
        let method = Method::from_bytes(method.as_bytes()).map_err(|e| format!("method: {e}"))?;
        let mut req = Request::builder().method(method).uri(url);
        if let Some(h) = req.headers_mut() {
            for (name, value) in headers {
                h.append(name.clone(), value.clone());
            }
        }
        let req = req.body(Full::new(body)).map_err(|e| format!("request: {e}"))?;
        let resp = self.inner.request(req).await.map_err(|e| format!("send {url}: {e}"))?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| format!("body: {e}"))?.to_bytes();
        Ok(Reply { status: parts.status, headers: parts.headers, body })
    }
}
