//! The job store on a real PostgreSQL server (instead of the embedded SQLite file), driven
//! through the API as the SQLite tests drive theirs: a job to done, a running job carried over a
//! restart, cancel and delete, every row checked in the database itself.
//!
//! Needs `TRIPOSG_TEST_POSTGRES`, the URL of a role that may create databases (CI starts
//! Debian's PostgreSQL and sets it, see .ci/run). Without it the test says so and passes, unless
//! `TRIPOSG_REQUIRE_VALIDATORS=1` (CI) makes that a failure.

mod common;

use common::{config, start, Browser, FAST, LONG};
use reqwest::StatusCode;
use sqlx::{Connection, Executor, PgConnection, Row};

fn admin_url() -> Option<String> {
    match std::env::var("TRIPOSG_TEST_POSTGRES") {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("TRIPOSG_REQUIRE_VALIDATORS").is_some() => {
            panic!("TRIPOSG_TEST_POSTGRES is not set: CI must start PostgreSQL (see .ci/run)")
        }
        Err(_) => {
            eprintln!("skipped: set TRIPOSG_TEST_POSTGRES=postgres://USER:PASS@HOST/DB to run it");
            None
        }
    }
}

/// A fresh database on the server of `admin`, dropped when the test passes (a failed run leaves
/// it to look at).
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    async fn create(admin: String) -> Self {
        let name = format!("triposg_test_{:016x}", rand::random::<u64>());
        let mut conn = PgConnection::connect(&admin).await.unwrap();
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        let mut url = reqwest::Url::parse(&admin).unwrap();
        url.set_path(&name);
        Self {
            admin,
            name,
            url: url.to_string(),
        }
    }

    /// `id -> status` of every job row.
    async fn statuses(&self) -> Vec<(String, String)> {
        let mut conn = PgConnection::connect(&self.url).await.unwrap();
        let rows = sqlx::query("SELECT id, status FROM jobs ORDER BY created_ms")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        rows.iter()
            .map(|r| (r.get("id"), r.get("status")))
            .collect()
    }

    async fn drop(self) {
        let mut conn = PgConnection::connect(&self.admin).await.unwrap();
        conn.execute(format!("DROP DATABASE {} WITH (FORCE)", self.name).as_str())
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_live_in_postgres_across_a_restart() {
    let Some(admin) = admin_url() else { return };
    let db = Database::create(admin).await;
    let outputs = tempfile::tempdir().unwrap();
    let mut c = config(outputs.path());
    c.database_url = Some(db.url.clone());

    let server = start(c.clone()).await;
    let me = Browser::new(&server);
    let done_id = me.submit(&FAST).await;
    let (names, done) = me.events(&done_id).await.until_final().await;
    assert_eq!(names.last().unwrap(), "done", "{done}");
    let (long, _) = me.submit_running(&LONG).await;
    server.shutdown().await.unwrap();
    assert!(
        !outputs.path().join("triposg.db").exists(),
        "the server made a SQLite store beside PostgreSQL"
    );
    let rows = db.statuses().await;
    assert_eq!(rows[0], (done_id.clone(), "done".to_string()), "{rows:?}");
    assert_eq!(rows[1].0, long);
    assert!(
        ["queued", "running"].contains(&rows[1].1.as_str()),
        "{rows:?}"
    );

    // After the restart the stopped job is back in the queue; it can be cancelled and deleted,
    // and the finished one is still there with its result.
    let server = start(c).await;
    let me = Browser {
        base: format!("http://{}", server.addr),
        ..me
    };
    let (_, job) = me.json(&format!("/api/jobs/{long}")).await;
    assert!(
        ["queued", "running"].contains(&job["status"].as_str().unwrap()),
        "{job}"
    );
    me.cancel(&long, me.events(&long).await).await;
    let r = me
        .delete(&format!("/api/jobs/{long}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (status, list) = me.json("/api/jobs").await;
    assert_eq!(status, StatusCode::OK);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], done_id.as_str());
    assert_eq!(list[0]["status"], "done");
    assert_eq!(list[0]["device"], "cpu");
    assert!(
        list[0]["result"]["candidates"][0]["faces"]
            .as_u64()
            .unwrap()
            > 0
    );
    server.shutdown().await.unwrap();
    assert_eq!(db.statuses().await, [(done_id, "done".to_string())]);
    db.drop().await;
}
