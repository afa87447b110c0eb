//! The run's files, token and servers: a store started on a fresh database
//! with one or more nodes, and the PostgreSQL database made for it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prets_destinations::rand_core::Rng as _;
use prets_destinations_server::{Config, Running, TokenEntry, mint_token, spawn, token_digest};

use crate::Store;

/// Where the run's files and databases are, and the token every node accepts.
pub(crate) struct Env {
    pub(crate) dir: PathBuf,
    key_file: PathBuf,
    pub(crate) token: Arc<str>,
    entry: TokenEntry,
    /// `--postgres-url`.
    postgres_url: String,
    /// Servers started so far: numbers the SQLite files and PostgreSQL
    /// databases.
    runs: usize,
}

impl Env {
    pub(crate) fn new(postgres_url: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "prets-load-{}-{:x}",
            std::process::id(),
            prets_destinations::os_rng().next_u32()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let key_file = dir.join("sealing-key");
        write_key_file(&key_file);
        let token = mint_token();
        let entry = TokenEntry {
            organization: "load".parse().unwrap(),
            digest: token_digest(&token),
        };
        Self {
            dir,
            key_file,
            token: format!("Bearer {}", *token).into(),
            entry,
            postgres_url: postgres_url.to_owned(),
            runs: 0,
        }
    }

    /// Starts `nodes` servers on a fresh database of `store` (a new SQLite
    /// file, a new memory repo, or a new PostgreSQL database), each with
    /// `adjust` applied to its configuration.
    pub(crate) async fn start(
        &mut self,
        store: Store,
        nodes: usize,
        adjust: impl Fn(&mut Config),
    ) -> Nodes {
        self.runs += 1;
        let sqlite = self.dir.join(format!("load-{}.sqlite3", self.runs));
        let mut config = Config::new(sqlite, "127.0.0.1:0".parse().unwrap());
        config.api_tokens = vec![self.entry.clone()];
        config.sealing_key_file = Some(self.key_file.clone());
        // The load is one organization's, measured unthrottled: no rate
        // limit, and room for every destination and delivery a run makes.
        config.publish_rate_limit = 0;
        config.max_destinations = u32::MAX;
        config.max_pending_deliveries = u32::MAX;
        config.memory = store == Store::Memory;
        let database = if store == Store::Postgres {
            let database = postgres::Database::create(&self.postgres_url, self.runs).await;
            postgres::configure(&mut config, &database);
            Some(database)
        } else {
            None
        };
        adjust(&mut config);
        let mut running = Vec::with_capacity(nodes);
        for _ in 0..nodes {
            running.push(spawn(&config).await.unwrap());
        }
        Nodes { running, database }
    }

    /// The SQLite file of the last store started.
    pub(crate) fn last_sqlite(&self) -> PathBuf {
        self.dir.join(format!("load-{}.sqlite3", self.runs))
    }

    pub(crate) fn finish(self) {
        std::fs::remove_dir_all(&self.dir).unwrap();
    }
}

/// The servers of one measurement, and the PostgreSQL database made for it.
pub(crate) struct Nodes {
    running: Vec<Running>,
    database: Option<postgres::Database>,
}

impl Nodes {
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.running.iter().map(|r| r.addr).collect()
    }

    /// The PostgreSQL database's size in bytes (0 without one).
    pub(crate) async fn database_size(&self) -> u64 {
        match &self.database {
            Some(database) => database.size().await,
            None => 0,
        }
    }

    /// Stops every node, then drops the database.
    pub(crate) async fn stop(self) {
        for node in self.running {
            node.stop().await.unwrap();
        }
        if let Some(database) = self.database {
            database.drop_database().await;
        }
    }
}

/// A fresh sealing-key file (mode 0600), shared by every node of a run.
fn write_key_file(path: &Path) {
    let mut key = [0u8; 32];
    prets_destinations::os_rng().fill_bytes(&mut key);
    let mut text = String::from("1 ");
    for b in key {
        write!(text, "{b:02x}").unwrap();
    }
    text.push('\n');
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path).unwrap(), text.as_bytes()).unwrap();
}

mod postgres {
    use prets_destinations_server::Config;
    use tokio_postgres::NoTls;

    /// A database created on `--postgres-url` for one measurement, named
    /// after the process and the measurement.
    pub(crate) struct Database {
        admin_url: String,
        name: String,
        /// The URL of the created database.
        url: String,
    }

    async fn execute(url: &str, statement: &str) {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .expect("cannot connect to PostgreSQL at --postgres-url");
        let connection = tokio::spawn(connection);
        client.batch_execute(statement).await.unwrap();
        drop(client);
        let _ = connection.await;
    }

    impl Database {
        pub(crate) async fn create(admin_url: &str, n: usize) -> Self {
            let name = format!("prets_load_{}_{n}", std::process::id());
            execute(admin_url, &format!("CREATE DATABASE {name}")).await;
            let mut url = url::Url::parse(admin_url).unwrap();
            url.set_path(&format!("/{name}"));
            Self {
                admin_url: admin_url.to_owned(),
                name,
                url: url.into(),
            }
        }

        /// `pg_database_size` of the database.
        pub(crate) async fn size(&self) -> u64 {
            let (client, connection) = tokio_postgres::connect(&self.url, NoTls).await.unwrap();
            let connection = tokio::spawn(connection);
            let row = client
                .query_one("SELECT pg_database_size(current_database())", &[])
                .await
                .unwrap();
            drop(client);
            let _ = connection.await;
            u64::try_from(row.get::<_, i64>(0)).unwrap_or(0)
        }

        pub(crate) async fn drop_database(self) {
            execute(
                &self.admin_url,
                &format!("DROP DATABASE {} WITH (FORCE)", self.name),
            )
            .await;
        }
    }

    /// Points `config` at `database`.
    pub(crate) fn configure(config: &mut Config, database: &Database) {
        config.database =
            prets_destinations_server::Database::parse(database.url.as_ref()).unwrap();
    }
}
