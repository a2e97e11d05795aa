//! What faces need from the engine beyond sending and reading streams: readiness, the storage
//! kind, recording an agent as known, a reader's read state. Faces call these instead of
//! reaching for the storage handle, so storage stays behind the engine's handles.

use crate::error::Error;
use crate::mailbox::MailboxHandle;
use crate::model::ReadState;
use crate::registry::RegistryHandle;
use crate::storage::StorageError;

impl RegistryHandle {
    /// Does storage answer? (Readiness probes; the error says why not.)
    pub async fn ping(&self) -> Result<(), StorageError> {
        self.0.storage.ping().await
    }

    /// `memory` or `redis`.
    pub fn storage_kind(&self) -> &'static str {
        self.0.storage.engine_kind()
    }

    /// The agents known to have a mailbox (admin overview; broadcasts reach exactly these).
    pub async fn known_agents(&self) -> Result<Vec<String>, Error> {
        Ok(self.0.storage.known_agents().await?)
    }

    /// Records `agent` as known, so broadcasts reach its mailbox.
    pub async fn touch_agent(&self, agent: &str) -> Result<(), Error> {
        Ok(self.0.storage.touch(agent).await?)
    }
}

impl MailboxHandle {
    /// What `reader` has marked read in this mailbox.
    pub async fn read_state(&self, reader: &str) -> Result<ReadState, Error> {
        Ok(self
            .registry
            .storage()
            .read_state(self.name(), reader)
            .await?)
    }
}
