//! What both test files make: a key record of org `o` with a fresh key.

use std::time::SystemTime;

use agx_auth::{ApiKey, KeyHasher, KeyId, KeyMode, KeyRecord};
use ring::rand::SystemRandom;

pub fn record(rng: &SystemRandom) -> KeyRecord {
    let key = ApiKey::generate(rng, KeyMode::Live).unwrap();
    KeyRecord {
        id: KeyId::generate(rng).unwrap(),
        org: "o".into(),
        name: "k".into(),
        hash: KeyHasher::default().hash(&key),
        prefix: "agx_live_…".into(),
        scopes: Vec::new(),
        mode: KeyMode::Live,
        created_at: SystemTime::now(),
        expires_at: None,
        lifetime: None,
        deleted_at: None,
        rate_limits: Vec::new(),
        allowed_networks: Vec::new(),
        credits: None,
        lineage: KeyId(0),
    }
}
