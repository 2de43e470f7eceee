//! A router built from a route table: the one loop behind both APIs' routers.
//! Each entry names its operation, and the API's `handler` gives the
//! operation's handler on the declared method; an entry it has no handler
//! for stops the server at start.

use axum::Router;
use axum::routing::{MethodFilter, MethodRouter};
use http::Method;

/// Why a router could not be built from its table.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("route {0} in the table has no operation name")]
    Unnamed(String),
    #[error("operation {0} in the route table has no handler")]
    NoHandler(String),
    #[error("route {0} is declared for a method a router cannot serve")]
    Method(String),
}

/// Routes every `(method, pattern, operation)` of `table`.
pub fn from_table<'t, S: Clone + Send + Sync + 'static>(
    table: impl IntoIterator<Item = (&'t Method, &'t str, Option<&'t str>)>,
    handler: impl Fn(&str, MethodFilter) -> Option<MethodRouter<S>>,
) -> Result<Router<S>, RouterError> {
    let mut router = Router::new();
    for (method, pattern, operation) in table {
        let operation = operation.ok_or_else(|| RouterError::Unnamed(pattern.to_owned()))?;
        let method = MethodFilter::try_from(method.clone()).map_err(|_| RouterError::Method(pattern.to_owned()))?;
        let handler = handler(operation, method).ok_or_else(|| RouterError::NoHandler(operation.to_owned()))?;
        router = router.route(pattern, handler);
    }
    Ok(router)
}
