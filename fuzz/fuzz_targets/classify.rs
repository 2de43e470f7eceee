//! Route classification of arbitrary method + path: never a panic; a match
//! names a resource that is a segment of the path, and its class and scope
//! are the table's.
#![no_main]

use agx_auth::{Resource, Routes};
use http::Method;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, &str)| {
    let (m, path) = input;
    let methods =
        [Method::GET, Method::POST, Method::PATCH, Method::HEAD, Method::OPTIONS, Method::DELETE, Method::PUT];
    let method = &methods[usize::from(m) % methods.len()];
    let routes = Routes::agentix();
    if let Some(found) = routes.classify(method, path) {
        match found.resource {
            Resource::Agent(id) | Resource::Team(id) => {
                assert!(path.split('/').any(|segment| segment == id), "a resource id that is not a segment");
            }
            Resource::None => {}
        }
        assert!(routes.scopes().any(|s| s == found.scope));
        assert!(routes.classes().any(|c| c == found.class));
    }
});
