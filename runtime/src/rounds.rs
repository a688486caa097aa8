//! Multi-round requests (SEP-2322, protocol 2026-07-28): a tool or prompt
//! that needs the client's help (the user's answer, a sampled completion,
//! the client's roots, or the user's confirmation of a write) answers with an
//! `input_required` result naming what it needs; the client retries the same
//! request with the answers and the `requestState` it was given.
//!
//! Nothing is kept between rounds: the state travels with the client, sealed
//! with HMAC-SHA256 (rmcp's `RequestStateCodec`) under a key every replica
//! shares, so any replica can take the retry. The seal binds the state to
//! the method, the tool or prompt, the caller and a digest of the exact
//! arguments, and it expires: a state cannot be moved to another operation
//! or another user, or edited. What must happen at most once (a confirmed
//! write) also spends the state's nonce, so one confirmation runs one call.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{InputRequests, InputRequiredResult, RequestStateCodec, SealOptions};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The largest sealed state handed to a client; answers that would make it
/// larger end the exchange instead of growing without bound.
const MAX_STATE_BYTES: usize = 64 * 1024;
/// The most rounds one request may take.
const MAX_ROUNDS: u32 = 10;
/// Spent nonces remembered at once (each for the state's lifetime).
const MAX_SPENT: usize = 100_000;

/// The sealing key, and where spent nonces are kept: in this process, or in
/// the Redis every replica shares (so a retry replayed to another replica
/// finds its state spent too).
pub struct Rounds {
    codec: RequestStateCodec,
    ttl: Duration,
    spent: Mutex<HashMap<String, Instant>>,
    #[cfg(feature = "redis")]
    shared: Option<Arc<super::shared_limits::SharedLimits>>,
}

/// Whether a state was spent now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spent {
    /// First use: the nonce, for the audit record.
    Now(String),
    /// Spent before (or no state to spend).
    Before,
    /// The shared store did not answer; nothing may run.
    Unknown(String),
}

impl std::fmt::Debug for Rounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rounds").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

/// What the state carries from one round to the next.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Carried {
    /// The round this state was issued in (1 for the first `input_required`).
    round: u32,
    /// Unguessable; spent by an operation that must run at most once.
    nonce: String,
    /// Answers of earlier rounds that the handler used, by request key.
    answers: BTreeMap<String, Value>,
    /// The keys this state's round asked for.
    asked: BTreeSet<String>,
}

/// Which operation a state belongs to: mixed into the seal, not stored in
/// it, so opening fails for any other method, name, caller or arguments.
#[derive(Debug, Clone)]
pub struct Operation {
    name: String,
    what: &'static str,
    binding: Vec<u8>,
}

impl Operation {
    pub fn new(method: &'static str, name: &str, caller: &str, arguments: &Value) -> Operation {
        // Canonical (keys sorted), so a client that reorders keys between rounds still matches.
        let arguments = super::audit::canonical_json(arguments);
        let digest = super::audit::hex(&Sha256::digest(arguments.as_bytes()));
        Operation {
            name: name.to_string(),
            what: match method {
                "tools/call" => "tool",
                "prompts/get" => "prompt",
                "resources/read" => "resource",
                _ => "request",
            },
            binding: format!("charter-rounds/1\0{method}\0{name}\0{caller}\0{digest}").into_bytes(),
        }
    }

    fn binding(&self) -> &[u8] {
        &self.binding
    }
}

/// Why a retry was refused before anything ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The `requestState` does not open: forged, edited, expired, or issued
    /// for another operation or caller.
    State(String),
    /// An answer is not the kind of object the request it answers returns.
    Answer(String),
}

impl Refused {
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::State(_) => "request_state_refused",
            Refused::Answer(_) => "input_response_invalid",
        }
    }
    pub fn message(&self) -> &str {
        match self {
            Refused::State(m) | Refused::Answer(m) => m,
        }
    }
}

impl Rounds {
    /// `key` is the deployment's shared secret (at least 32 bytes); `None`
    /// draws a key for this process alone, which is right for one replica
    /// and for stdio.
    pub fn new(key: Option<Vec<u8>>, ttl: Duration) -> Result<Rounds, String> {
        let key = match key {
            Some(key) if key.len() < 32 => {
                return Err(format!(
                    "the requestState key has {} bytes; it needs at least 32 (e.g. `openssl rand -base64 48`)",
                    key.len()
                ));
            }
            Some(key) => key,
            None => {
                let mut key = vec![0u8; 32];
                getrandom::fill(&mut key).map_err(|e| format!("no randomness for the requestState key: {e}"))?;
                key
            }
        };
        let codec = RequestStateCodec::try_new(key).map_err(|e| format!("the requestState key: {e}"))?;
        Ok(Rounds {
            codec,
            ttl,
            spent: Mutex::new(HashMap::new()),
            #[cfg(feature = "redis")]
            shared: None,
        })
    }

    /// Keeps spent nonces in the Redis the replicas share.
    #[cfg(feature = "redis")]
    pub fn share(mut self, shared: Arc<super::shared_limits::SharedLimits>) -> Rounds {
        self.shared = Some(shared);
        self
    }

    /// The retry's answers, checked: earlier rounds' from the sealed state,
    /// this round's from `inputResponses`. A request with neither is round 0.
    pub fn open(
        self: &Arc<Self>,
        operation: &Operation,
        responses: Option<BTreeMap<String, Value>>,
        state: Option<&str>,
    ) -> Result<Round, Refused> {
        let carried = match state {
            None => Carried::default(),
            Some(sealed) => self
                .codec
                .open_json_with::<Carried>(sealed, operation.binding())
                .map_err(|e| {
                    Refused::State(format!(
                        "requestState was refused ({e}): it must be echoed exactly as received, by the same \
                         caller, for the same {} `{}` with the same arguments, within {}s",
                        operation.what,
                        operation.name,
                        self.ttl.as_secs()
                    ))
                })?,
        };
        let mut answers = carried.answers;
        for (key, answer) in responses.unwrap_or_default() {
            if !answer.is_object() {
                return Err(Refused::Answer(format!(
                    "inputResponses.{key} must be an object (the result of the request it answers), not {}",
                    kind_of(&answer)
                )));
            }
            // An answer sealed in an earlier round stands; the client cannot replace it.
            answers.entry(key).or_insert(answer);
        }
        Ok(Round {
            round: carried.round,
            nonce: (!carried.nonce.is_empty()).then_some(carried.nonce),
            asked: carried.asked,
            answers,
            used: Mutex::new(BTreeSet::new()),
            rounds: Some(self.clone()),
        })
    }

    /// The `input_required` result for `requests`, with a fresh state that
    /// carries every answer the handler used so far.
    pub fn suspend(
        &self,
        operation: &Operation,
        round: &Round,
        requests: InputRequests,
    ) -> Result<InputRequiredResult, String> {
        if round.round >= MAX_ROUNDS {
            return Err(format!(
                "`{}` asked the client for input {MAX_ROUNDS} times without finishing",
                operation.name
            ));
        }
        let used = round.used.lock().unwrap_or_else(|e| e.into_inner());
        let carried = Carried {
            round: round.round + 1,
            nonce: new_nonce()?,
            answers: round
                .answers
                .iter()
                .filter(|(key, _)| used.contains(*key))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            asked: requests.keys().cloned().collect(),
        };
        let sealed = self
            .codec
            .seal_json_with(
                &carried,
                &SealOptions::new().associated_data(operation.binding()).ttl(self.ttl),
            )
            .map_err(|e| format!("cannot seal the request state: {e}"))?;
        if sealed.len() > MAX_STATE_BYTES {
            return Err(format!(
                "the answers `{}` collected make a request state of {} bytes, over the {MAX_STATE_BYTES}-byte limit",
                operation.name,
                sealed.len()
            ));
        }
        Ok(InputRequiredResult::new(Some(requests), Some(sealed)))
    }

    /// Spends a state's nonce: first use, or used before (within the state's
    /// lifetime, after which the seal refuses it anyway).
    async fn spend_nonce(&self, nonce: &str) -> Spent {
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared {
            return match shared.spend_once(nonce, self.ttl).await {
                Ok(true) => Spent::Now(nonce.to_string()),
                Ok(false) => Spent::Before,
                Err(e) => Spent::Unknown(e),
            };
        }
        if self.spend_locally(nonce) {
            Spent::Now(nonce.to_string())
        } else {
            Spent::Before
        }
    }

    fn spend_locally(&self, nonce: &str) -> bool {
        let now = Instant::now();
        let mut spent = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        if spent.len() >= MAX_SPENT {
            spent.retain(|_, at| now.duration_since(*at) < self.ttl);
        }
        if spent.len() >= MAX_SPENT {
            // Full of live nonces: refuse rather than forget one.
            return false;
        }
        spent.insert(nonce.to_string(), now).is_none()
    }
}

/// One request's answers, as the handler and the approval step see them.
#[derive(Debug, Default)]
pub struct Round {
    round: u32,
    nonce: Option<String>,
    asked: BTreeSet<String>,
    answers: BTreeMap<String, Value>,
    used: Mutex<BTreeSet<String>>,
    rounds: Option<Arc<Rounds>>,
}

impl Round {
    /// The answer to request `key`, marking it as one to carry into the next round.
    pub fn answer(&self, key: &str) -> Option<&Value> {
        let answer = self.answers.get(key)?;
        self.used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string());
        Some(answer)
    }

    /// The sealed state's nonce: present only on a retry that carried a state.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }

    /// Whether the round that issued this retry's state asked for `key`.
    pub fn asked(&self, key: &str) -> bool {
        self.asked.contains(key)
    }

    /// Spends this retry's state, for an operation that runs at most once per
    /// answer: the nonce the first time, `None` for a state spent before.
    pub async fn spend(&self) -> Spent {
        match (&self.nonce, &self.rounds) {
            (Some(nonce), Some(rounds)) => rounds.spend_nonce(nonce).await,
            _ => Spent::Before,
        }
    }
}

fn new_nonce() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a request state: {e}"))?;
    Ok(super::audit::hex(&bytes))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rounds() -> Arc<Rounds> {
        Arc::new(Rounds::new(Some(vec![7; 32]), Duration::from_secs(60)).unwrap())
    }

    fn op(caller: &str, arguments: &Value) -> Operation {
        Operation::new("tools/call", "delete_page", caller, arguments)
    }

    fn requests() -> InputRequests {
        serde_json::from_value(json!({"confirm": {"method": "roots/list", "params": {}}})).unwrap()
    }

    #[test]
    fn answers_used_in_one_round_come_back_sealed_in_the_next() {
        let rounds = rounds();
        let args = json!({"page": 1});
        let first = rounds.open(&op("alice", &args), None, None).unwrap();
        assert!(first.answer("step1").is_none());
        let result = rounds.suspend(&op("alice", &args), &first, requests()).unwrap();
        let state = result.request_state.unwrap();

        let responses = BTreeMap::from([("step1".to_string(), json!({"action": "accept"}))]);
        let second = rounds.open(&op("alice", &args), Some(responses), Some(&state)).unwrap();
        assert_eq!(second.answer("step1"), Some(&json!({"action": "accept"})));
        let state = rounds
            .suspend(&op("alice", &args), &second, requests())
            .unwrap()
            .request_state
            .unwrap();

        // The third round sends only step2; step1 comes from the state, and cannot be replaced.
        let responses = BTreeMap::from([
            ("step1".to_string(), json!({"action": "decline"})),
            ("step2".to_string(), json!({"action": "accept"})),
        ]);
        let third = rounds.open(&op("alice", &args), Some(responses), Some(&state)).unwrap();
        assert_eq!(third.answer("step1"), Some(&json!({"action": "accept"})));
        assert_eq!(third.answer("step2"), Some(&json!({"action": "accept"})));
        assert_eq!(third.round, 2);
    }

    #[test]
    fn a_state_opens_only_for_its_own_operation_caller_and_bytes() {
        let rounds = rounds();
        let args = json!({"page": 1});
        let round = rounds.open(&op("alice", &args), None, None).unwrap();
        let state = rounds
            .suspend(&op("alice", &args), &round, requests())
            .unwrap()
            .request_state
            .unwrap();
        assert!(rounds.open(&op("alice", &args), None, Some(&state)).is_ok());

        let other_args = json!({"page": 2});
        for refused in [
            rounds.open(&op("mallory", &args), None, Some(&state)),
            rounds.open(&op("alice", &other_args), None, Some(&state)),
            rounds.open(&op("alice", &args), None, Some(&format!("{state}-TAMPERED"))),
            rounds.open(&op("alice", &args), None, Some("")),
            Arc::new(Rounds::new(Some(vec![8; 32]), Duration::from_secs(60)).unwrap()).open(
                &op("alice", &args),
                None,
                Some(&state),
            ),
        ] {
            assert!(matches!(refused, Err(Refused::State(_))), "{refused:?}");
        }
    }

    #[test]
    fn answers_must_be_objects_and_keys_are_short_lived() {
        let rounds = rounds();
        let args = json!({});
        let responses = BTreeMap::from([("user_name".to_string(), json!(12345))]);
        let refused = rounds.open(&op("alice", &args), Some(responses), None).unwrap_err();
        assert_eq!(refused.reason(), "input_response_invalid");
        assert!(refused.message().contains("inputResponses.user_name must be an object"));
        assert!(Rounds::new(Some(vec![1; 16]), Duration::from_secs(1)).is_err());
    }

    #[tokio::test]
    async fn a_state_is_spent_once() {
        let rounds = rounds();
        let args = json!({});
        let first = rounds.open(&op("alice", &args), None, None).unwrap();
        assert_eq!(first.spend().await, Spent::Before, "a first call has no state to spend");
        let state = rounds
            .suspend(&op("alice", &args), &first, requests())
            .unwrap()
            .request_state
            .unwrap();
        let retry = rounds.open(&op("alice", &args), None, Some(&state)).unwrap();
        assert!(retry.asked("confirm") && !retry.asked("other"));
        assert!(matches!(retry.spend().await, Spent::Now(_)));
        let replay = rounds.open(&op("alice", &args), None, Some(&state)).unwrap();
        assert_eq!(replay.spend().await, Spent::Before, "the same state twice");
    }
}
