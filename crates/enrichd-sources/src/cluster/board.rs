//! A board the replicas post to and read: one Redis hash per board, one
//! field per replica, each post stamped with its time. What one replica
//! knows only of itself (its counters, say) is read for all of them this
//! way; a replica that stopped posting drops off after a while.
use super::Cluster;

impl Cluster {
    /// Posts `text` as `replica`'s entry on `board`, at `at_ms`.
    pub async fn post(&self, board: &str, replica: &str, text: &str, at_ms: i64) {
        let Some(mut conn) = self.conn() else { return };
        let posted: Result<i64, _> = redis::cmd("HSET")
            .arg(self.key("board", board))
            .arg(replica)
            .arg(format!("{at_ms}\n{text}"))
            .query_async(&mut conn)
            .await;
        if let Err(e) = posted {
            self.failed(&e);
        }
    }

    /// Every replica's entry on `board` posted at or after `since_ms` (older
    /// ones are removed); `None` in fallback.
    pub async fn read_board(&self, board: &str, since_ms: i64) -> Option<Vec<String>> {
        let mut conn = self.conn()?;
        let key = self.key("board", board);
        let entries: Vec<(String, String)> =
            match redis::cmd("HGETALL").arg(&key).query_async(&mut conn).await {
                Ok(entries) => entries,
                Err(e) => {
                    self.failed(&e);
                    return None;
                }
            };
        let mut fresh = Vec::new();
        for (replica, value) in entries {
            let (at, text) = value.split_once('\n').unwrap_or(("0", ""));
            if at.parse::<i64>().unwrap_or(0) >= since_ms {
                fresh.push(text.to_owned());
            } else {
                let _: Result<i64, _> = redis::cmd("HDEL")
                    .arg(&key)
                    .arg(&replica)
                    .query_async(&mut conn)
                    .await;
            }
        }
        Some(fresh)
    }
}
