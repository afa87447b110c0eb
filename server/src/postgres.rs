//! PostgreSQL as the server's store: several nodes on one database.

use prets_destinations::{Keyring, Timestamp};
use prets_destinations_postgres::PgRepo;
use zeroize::Zeroizing;

use crate::auth::{ApiTokens, mint_token, token_digest};
use crate::database::PgUrl;
use crate::{Config, StartError, configured_tokens, demo_tenant, keyfile};

/// What a node needs from the database at start.
pub(crate) struct Opened {
    pub(crate) repo: PgRepo,
    pub(crate) keyring: Keyring,
    pub(crate) tokens: ApiTokens,
    /// The demo organization's token when this node created it.
    pub(crate) demo_token: Option<Zeroizing<String>>,
}

/// Loads the sealing key every node shares (an explicit file is required:
/// a key made by one node could not open what another sealed), connects
/// (migrating the schema), and loads the API tokens: the configured ones, or
/// those stored, the first node of a cluster creating the demo
/// organization's. Refuses before connecting if the key file is missing.
pub(crate) async fn open(config: &Config, url: &PgUrl) -> Result<Opened, StartError> {
    let path = config
        .sealing_key_file
        .as_ref()
        .ok_or(StartError::SealingKeyRequired)?;
    let keyring = keyfile::load(path).map_err(StartError::SealingKey)?;
    tracing::info!(database = %url, pool_size = config.database_pool_size, "connecting to PostgreSQL");
    let pool_size = usize::try_from(config.database_pool_size).unwrap_or(usize::MAX);
    let repo = PgRepo::connect(url.expose(), pool_size)
        .await
        .map_err(StartError::Postgres)?;
    let (tokens, demo_token) = if config.api_tokens.is_empty() {
        let token = mint_token();
        let now =
            Timestamp::try_from(std::time::SystemTime::now()).map_err(|_| StartError::Clock)?;
        let digest = token_digest(&token);
        let created = repo
            .add_first_api_token(digest, &demo_tenant(), now)
            .await
            .map_err(StartError::Postgres)?;
        if created {
            // The table was empty under the lock, so the committed token is
            // the only one: no second read that could fail after the commit
            // and lose the token before the operator ever sees it.
            (ApiTokens::new(vec![(digest, demo_tenant())]), Some(token))
        } else {
            let stored = repo.api_tokens().await.map_err(StartError::Postgres)?;
            (ApiTokens::new(stored), None)
        }
    } else {
        (configured_tokens(config), None)
    };
    Ok(Opened {
        repo,
        keyring,
        tokens,
        demo_token,
    })
}
