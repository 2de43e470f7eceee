//! [`Lookup`]: the return type of the hot-path trait methods.
//!
//! `#[async_trait]` boxes every call's future: one heap allocation per
//! lookup, three per verdict (key, agent, limiter), even when the answer is
//! already in memory. A `Lookup` is ready at once when the implementation
//! has the answer (the memory store, a cache hit, the in-process limiter)
//! and boxes a future only when it must wait for I/O. The traits stay
//! object-safe either way.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pub enum Lookup<'a, T> {
    Ready(Option<T>),
    Pending(Pin<Box<dyn Future<Output = T> + Send + 'a>>),
}

impl<'a, T> Lookup<'a, T> {
    /// An answer that is already known: no allocation.
    pub fn ready(value: T) -> Self {
        Lookup::Ready(Some(value))
    }

    /// An answer that needs I/O.
    pub fn pending(future: impl Future<Output = T> + Send + 'a) -> Self {
        Lookup::Pending(Box::pin(future))
    }
}

impl<T: Unpin> Future for Lookup<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.get_mut() {
            // Polling again after completion is a caller bug; it never completes twice.
            Lookup::Ready(value) => value.take().map_or(Poll::Pending, Poll::Ready),
            Lookup::Pending(future) => future.as_mut().poll(cx),
        }
    }
}
