//! Conversations of the public API: in memory, or in PostgreSQL (the
//! server's own tables, migrated beside agx-auth-postgres's) so that they
//! survive a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use agx_auth_postgres::PgStore;
use serde_json::{Map, Value};

#[derive(Clone, Debug)]
pub struct Message {
    pub id: String,
    pub role: String,
    pub content: String,
    pub at: SystemTime,
}

#[derive(Clone, Debug)]
pub struct Conversation {
    pub id: String,
    pub agent_id: String,
    pub agent_name: String,
    pub messages: Vec<Message>,
    pub message_count: usize,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
    pub metadata: Map<String, Value>,
}

/// What a chat adds to a conversation.
pub struct Turn {
    pub owner: String,
    pub owner_name: String,
    pub session: String,
    pub new_id: String,
    pub messages: [Message; 2],
    pub metadata: Option<Map<String, Value>>,
}

pub enum Conversations {
    Memory(Mutex<HashMap<(String, String), Conversation>>),
    Postgres(Arc<PgStore>),
}

mod embedded {
    refinery::embed_migrations!("migrations");
}

type Failure = String;

impl Conversations {
    pub async fn postgres(pg: Arc<PgStore>) -> Result<Self, Failure> {
        let mut client = pg.pool().get().await.map_err(|e| e.to_string())?;
        let mut runner = embedded::migrations::runner();
        runner.set_migration_table_name("agx_server_schema_history");
        // Instances starting together take turns, as agx-auth-postgres's migrations do.
        let lock = "SELECT pg_advisory_lock(hashtext('agx-server-migrations'))";
        client.batch_execute(lock).await.map_err(|e| e.to_string())?;
        let migrated = runner.run_async(&mut **client).await;
        let unlock = "SELECT pg_advisory_unlock(hashtext('agx-server-migrations'))";
        client.batch_execute(unlock).await.map_err(|e| e.to_string())?;
        migrated.map_err(|e| format!("conversation migrations: {e}"))?;
        Ok(Conversations::Postgres(pg))
    }

    fn memory(&self) -> Option<std::sync::MutexGuard<'_, HashMap<(String, String), Conversation>>> {
        match self {
            Conversations::Memory(m) => Some(m.lock().unwrap_or_else(|e| e.into_inner())),
            Conversations::Postgres(_) => None,
        }
    }

    /// Appends a turn; returns the conversation's id.
    pub async fn append(&self, turn: Turn) -> Result<String, Failure> {
        let now = turn.messages[0].at;
        if let Some(mut all) = self.memory() {
            let c = all.entry((turn.owner.clone(), turn.session.clone())).or_insert_with(|| Conversation {
                id: turn.new_id,
                agent_id: turn.owner,
                agent_name: turn.owner_name,
                messages: Vec::new(),
                message_count: 0,
                created_at: now,
                updated_at: now,
                metadata: Map::new(),
            });
            c.messages.extend(turn.messages);
            c.message_count = c.messages.len();
            c.updated_at = now;
            c.metadata.extend(turn.metadata.unwrap_or_default());
            return Ok(c.id.clone());
        }
        let Conversations::Postgres(pg) = self else { return Err("no store".into()) };
        let mut client = pg.pool().get().await.map_err(|e| e.to_string())?;
        let tx = client.transaction().await.map_err(|e| e.to_string())?;
        let metadata = Value::Object(turn.metadata.unwrap_or_default());
        let row = tx
            .query_one(
                "INSERT INTO conversations (id, owner_id, session_id, owner_name, created_at, updated_at, metadata) \
                 VALUES ($1, $2, $3, $4, $5, $5, $6) \
                 ON CONFLICT (owner_id, session_id) DO UPDATE SET updated_at = EXCLUDED.updated_at, \
                 metadata = conversations.metadata || EXCLUDED.metadata RETURNING id",
                &[&turn.new_id, &turn.owner, &turn.session, &turn.owner_name, &now, &metadata],
            )
            .await
            .map_err(|e| e.to_string())?;
        let id: String = row.get(0);
        for m in &turn.messages {
            tx.execute(
                "INSERT INTO conversation_messages (id, conversation_id, role, content, at) VALUES ($1, $2, $3, $4, $5)",
                &[&m.id, &id, &m.role, &m.content, &m.at],
            )
            .await
            .map_err(|e| e.to_string())?;
        }
        tx.commit().await.map_err(|e| e.to_string())?;
        Ok(id)
    }

    /// The conversation with a page of its messages.
    pub async fn get(
        &self,
        owner: &str,
        session: &str,
        limit: usize,
        offset: usize,
    ) -> Result<Option<Conversation>, Failure> {
        if let Some(all) = self.memory() {
            return Ok(all.get(&(owner.to_owned(), session.to_owned())).map(|c| {
                let mut page = c.clone();
                page.messages = c.messages.iter().skip(offset).take(limit).cloned().collect();
                page
            }));
        }
        let Conversations::Postgres(pg) = self else { return Err("no store".into()) };
        let client = pg.pool().get().await.map_err(|e| e.to_string())?;
        let Some(row) = client
            .query_opt(
                "SELECT id, owner_name, created_at, updated_at, metadata, \
                 (SELECT count(*) FROM conversation_messages m WHERE m.conversation_id = c.id) \
                 FROM conversations c WHERE owner_id = $1 AND session_id = $2",
                &[&owner, &session],
            )
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let id: String = row.get(0);
        let (limit, offset) = (i64::try_from(limit).unwrap_or(100), i64::try_from(offset).unwrap_or(0));
        let messages = client
            .query(
                "SELECT id, role, content, at FROM conversation_messages WHERE conversation_id = $1 \
                 ORDER BY at, seq LIMIT $2 OFFSET $3",
                &[&id, &limit, &offset],
            )
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .map(|m| Message { id: m.get(0), role: m.get(1), content: m.get(2), at: m.get(3) })
            .collect();
        let count: i64 = row.get(5);
        Ok(Some(Conversation {
            id,
            agent_id: owner.to_owned(),
            agent_name: row.get(1),
            messages,
            message_count: usize::try_from(count).unwrap_or(0),
            created_at: row.get(2),
            updated_at: row.get(3),
            metadata: match row.get::<_, Value>(4) {
                Value::Object(m) => m,
                _ => Map::new(),
            },
        }))
    }

    /// Merges metadata into a conversation; `false` when there is none.
    pub async fn merge_metadata(&self, owner: &str, session: &str, extra: Map<String, Value>) -> Result<bool, Failure> {
        let now = SystemTime::now();
        if let Some(mut all) = self.memory() {
            return Ok(all.get_mut(&(owner.to_owned(), session.to_owned())).is_some_and(|c| {
                c.metadata.extend(extra);
                c.updated_at = now;
                true
            }));
        }
        let Conversations::Postgres(pg) = self else { return Err("no store".into()) };
        let client = pg.pool().get().await.map_err(|e| e.to_string())?;
        let n = client
            .execute(
                "UPDATE conversations SET metadata = metadata || $3, updated_at = $4 WHERE owner_id = $1 AND session_id = $2",
                &[&owner, &session, &Value::Object(extra), &now],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(n > 0)
    }
}
