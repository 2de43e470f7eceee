//! Conversations of the public API: in memory, or in PostgreSQL (the
//! server's own tables, migrated beside agx-auth-postgres's) so that they
//! survive a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use agx_auth_postgres::PgStore;
use serde_json::{Map, Value};

use crate::input::{MAX_MESSAGES, MAX_METADATA_BYTES, metadata_size};

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

/// The memory store's conversations, by (owner, session).
pub type MemoryConversations = HashMap<(String, String), Conversation>;

pub enum Conversations {
    Memory(Mutex<MemoryConversations>),
    Postgres(Arc<PgStore>),
}

/// Why a conversation was not changed or read.
#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    /// The conversation already holds [`MAX_MESSAGES`].
    #[error("the conversation is full")]
    Full,
    /// The merged metadata would pass [`MAX_METADATA_BYTES`].
    #[error("the metadata would be too large")]
    MetadataTooLarge,
    #[error("the database refused: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("{0}")]
    Migration(#[from] crate::migrate::MigrationError),
}

type Failure = ConversationError;

/// The one rule for both stores: a turn fits if the conversation has room
/// for its messages and the merged metadata stays under the cap. Merges
/// `extra` into `metadata` when it fits.
fn admit(
    count: usize,
    adding: usize,
    metadata: &mut Map<String, Value>,
    extra: Map<String, Value>,
) -> Result<(), Failure> {
    if count + adding > MAX_MESSAGES {
        return Err(ConversationError::Full);
    }
    if extra.is_empty() {
        return Ok(());
    }
    let mut merged = metadata.clone();
    merged.extend(extra);
    if metadata_size(&merged) > MAX_METADATA_BYTES {
        return Err(ConversationError::MetadataTooLarge);
    }
    *metadata = merged;
    Ok(())
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl Conversations {
    pub async fn postgres(pg: Arc<PgStore>) -> Result<Self, Failure> {
        crate::migrate::run(&pg).await?;
        Ok(Conversations::Postgres(pg))
    }

    /// The memory store's map, locked; or the database.
    fn store(&self) -> Result<std::sync::MutexGuard<'_, MemoryConversations>, &PgStore> {
        match self {
            Conversations::Memory(m) => Ok(m.lock().unwrap_or_else(|e| e.into_inner())),
            Conversations::Postgres(pg) => Err(pg),
        }
    }

    /// Appends a turn; returns the conversation's id.
    pub async fn append(&self, turn: Turn) -> Result<String, Failure> {
        let now = turn.messages[0].at;
        let pg = match self.store() {
            Ok(mut all) => {
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
                admit(c.messages.len(), turn.messages.len(), &mut c.metadata, turn.metadata.unwrap_or_default())?;
                c.messages.extend(turn.messages);
                c.message_count = c.messages.len();
                c.updated_at = now;
                return Ok(c.id.clone());
            }
            Err(pg) => pg,
        };
        let mut client = pg.pool().get().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO conversations (id, owner_id, session_id, owner_name, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (owner_id, session_id) DO NOTHING",
            &[&turn.new_id, &turn.owner, &turn.session, &turn.owner_name, &now],
        )
        .await?;
        // The row lock makes concurrent turns of one conversation take turns,
        // so the cap and the merge see every earlier turn.
        let row = tx
            .query_one(
                "SELECT id, metadata, (SELECT count(*) FROM conversation_messages m WHERE m.conversation_id = c.id) \
                 FROM conversations c WHERE owner_id = $1 AND session_id = $2 FOR UPDATE",
                &[&turn.owner, &turn.session],
            )
            .await?;
        let id: String = row.get(0);
        let mut metadata = object(row.get(1));
        let count = usize::try_from(row.get::<_, i64>(2)).unwrap_or(usize::MAX);
        admit(count, turn.messages.len(), &mut metadata, turn.metadata.unwrap_or_default())?;
        tx.execute(
            "UPDATE conversations SET updated_at = $2, metadata = $3 WHERE id = $1",
            &[&id, &now, &Value::Object(metadata)],
        )
        .await?;
        for m in &turn.messages {
            tx.execute(
                "INSERT INTO conversation_messages (id, conversation_id, role, content, at) VALUES ($1, $2, $3, $4, $5)",
                &[&m.id, &id, &m.role, &m.content, &m.at],
            )
            .await?;
        }
        tx.commit().await?;
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
        let pg = match self.store() {
            Ok(all) => {
                return Ok(all.get(&(owner.to_owned(), session.to_owned())).map(|c| {
                    let mut page = c.clone();
                    page.messages = c.messages.iter().skip(offset).take(limit).cloned().collect();
                    page
                }));
            }
            Err(pg) => pg,
        };
        let client = pg.pool().get().await?;
        let Some(row) = client
            .query_opt(
                "SELECT id, owner_name, created_at, updated_at, metadata, \
                 (SELECT count(*) FROM conversation_messages m WHERE m.conversation_id = c.id) \
                 FROM conversations c WHERE owner_id = $1 AND session_id = $2",
                &[&owner, &session],
            )
            .await?
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
            .await?
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
            metadata: object(row.get(4)),
        }))
    }

    /// Merges metadata into a conversation; `false` when there is none.
    pub async fn merge_metadata(&self, owner: &str, session: &str, extra: Map<String, Value>) -> Result<bool, Failure> {
        let now = SystemTime::now();
        let pg = match self.store() {
            Ok(mut all) => {
                let Some(c) = all.get_mut(&(owner.to_owned(), session.to_owned())) else { return Ok(false) };
                admit(0, 0, &mut c.metadata, extra)?;
                c.updated_at = now;
                return Ok(true);
            }
            Err(pg) => pg,
        };
        let mut client = pg.pool().get().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .query_opt(
                "SELECT id, metadata FROM conversations WHERE owner_id = $1 AND session_id = $2 FOR UPDATE",
                &[&owner, &session],
            )
            .await?
        else {
            return Ok(false);
        };
        let id: String = row.get(0);
        let mut metadata = object(row.get(1));
        admit(0, 0, &mut metadata, extra)?;
        tx.execute(
            "UPDATE conversations SET metadata = $2, updated_at = $3 WHERE id = $1",
            &[&id, &Value::Object(metadata), &now],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
