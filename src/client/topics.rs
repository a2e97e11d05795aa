//! Topics and durable subscriptions in the client library.

use mailbox_actors::model::{Subscription, TopicConfig};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Client, ClientError};

/// The wire shapes are the server's own answers (one definition, in [`crate::ops`]).
pub use crate::ops::{TopicInfo, TopicList, TopicPage as HistoryPage};

#[derive(Deserialize)]
struct SubscriptionList {
    subscriptions: Vec<Subscription>,
}

impl Client {
    /// Creates or reconfigures a topic; `None` keeps the broker's default retention.
    pub async fn put_topic(&self, name: &str, config: &TopicConfig) -> Result<Value, ClientError> {
        let mut body = json!({});
        if let Some(n) = config.retention_max_len {
            body["retention_max_len"] = json!(n);
        }
        if let Some(s) = config.retention_seconds {
            body["retention_seconds"] = json!(s);
        }
        self.call(
            self.request(Method::PUT, &format!("/v1/topics/{name}"))
                .json(&body),
        )
        .await
    }

    /// Topics at or under `prefix`, after `after`, at most `limit`.
    pub async fn topics(
        &self,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<TopicList, ClientError> {
        let mut q: Vec<(&str, String)> = Vec::new();
        if let Some(p) = prefix {
            q.push(("prefix", p.to_owned()));
        }
        if let Some(a) = after {
            q.push(("after", a.to_owned()));
        }
        if let Some(l) = limit {
            q.push(("limit", l.to_string()));
        }
        self.call(self.request(Method::GET, "/v1/topics").query(&q))
            .await
    }

    pub async fn topic(&self, name: &str) -> Result<TopicInfo, ClientError> {
        self.call(self.request(Method::GET, &format!("/v1/topics/{name}")))
            .await
    }

    pub async fn delete_topic(&self, name: &str) -> Result<(), ClientError> {
        let _: Value = self
            .call(self.request(Method::DELETE, &format!("/v1/topics/{name}")))
            .await?;
        Ok(())
    }

    /// A topic's history; `query` takes the browse parameters of SPEC section 5.
    pub async fn topic_history(
        &self,
        name: &str,
        query: &[(&str, String)],
    ) -> Result<HistoryPage, ClientError> {
        self.call(
            self.request(Method::GET, &format!("/v1/topics/{name}/messages"))
                .query(query),
        )
        .await
    }

    /// A durable subscription of `mailbox` (default: the token's own) to `pattern`.
    pub async fn subscribe(
        &self,
        pattern: &str,
        mailbox: Option<&str>,
    ) -> Result<Subscription, ClientError> {
        let mut body = json!({ "pattern": pattern });
        if let Some(m) = mailbox {
            body["mailbox"] = json!(m);
        }
        self.call(self.request(Method::POST, "/v1/subscriptions").json(&body))
            .await
    }

    /// The caller's durable subscriptions (every one with `all`, for admins).
    pub async fn subscriptions(&self, all: bool) -> Result<Vec<Subscription>, ClientError> {
        let mut r = self.request(Method::GET, "/v1/subscriptions");
        if all {
            r = r.query(&[("all", "true")]);
        }
        let list: SubscriptionList = self.call(r).await?;
        Ok(list.subscriptions)
    }

    pub async fn unsubscribe(&self, id: &str) -> Result<(), ClientError> {
        let _: Value = self
            .call(self.request(Method::DELETE, &format!("/v1/subscriptions/{id}")))
            .await?;
        Ok(())
    }
}
