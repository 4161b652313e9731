//! Cylc GraphQL answers: the hub's own denial in GraphQL's error shape, and the
//! outcome of each forwarded mutation field read back from the UI server's answer
//! for the audit log.
//!
//! Pure functions over JSON; it decides nothing and must not panic on any answer
//! (the UI server is the owner's process, so its answer is untrusted input).

use serde_json::{json, Map, Value as Json};

/// A refusal as a GraphQL client expects it: HTTP 200 with every refused root field
/// `null` under `data` and one error naming it, the shape cylc-uiserver itself uses
/// for `HTTP 403: Forbidden`. With no field known (the request could not be read),
/// `data` is `null` and the error has no path.
pub fn denial(response_keys: &[&str], message: &str) -> Json {
    if response_keys.is_empty() {
        return json!({"data": null, "errors": [{"message": message}]});
    }
    let mut data = Map::new();
    let mut errors = Vec::new();
    for k in response_keys {
        data.insert((*k).to_string(), Json::Null);
        errors.push(json!({"message": message, "path": [k]}));
    }
    json!({"data": data, "errors": errors})
}

/// What happened to one root field of a forwarded mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldOutcome {
    /// Every workflow it reached accepted it; the messages (command ids) as given.
    Accepted { messages: Vec<String> },
    /// An error with this field's path, or a `[false, message]` response.
    Failed { message: String },
    /// The answer says nothing about the field (e.g. the request failed as a whole).
    NoAnswer { message: String },
}

impl FieldOutcome {
    pub fn ok(&self) -> bool {
        matches!(self, FieldOutcome::Accepted { .. })
    }
}

/// Reads the outcome of each root field (by its response key) from a Cylc answer.
///
/// Cylc answers `data.<key>.result` as a list; an entry is either
/// `{"response": [ok, message]}` (the UI server itself, e.g. "No matching
/// workflows") or `{"<key>": {"result": [{"id", "response": [ok, message]}]}}` (the
/// scheduler's answer relayed), so every `response` pair under the field counts;
/// any `false` fails the field. An error whose `path` starts with the key fails it.
pub fn outcomes(answer: &Json, response_keys: &[&str]) -> Vec<(String, FieldOutcome)> {
    let errors: Vec<&Json> = answer
        .get("errors")
        .and_then(Json::as_array)
        .map(|e| e.iter().collect())
        .unwrap_or_default();
    let pathless: Vec<String> = errors
        .iter()
        .filter(|e| {
            e.get("path")
                .and_then(Json::as_array)
                .is_none_or(|p| p.is_empty())
        })
        .map(|e| message_of(e))
        .collect();
    response_keys
        .iter()
        .map(|key| {
            let own_error = errors.iter().find(|e| {
                e.get("path")
                    .and_then(Json::as_array)
                    .and_then(|p| p.first())
                    .and_then(Json::as_str)
                    == Some(key)
            });
            let outcome = if let Some(e) = own_error {
                FieldOutcome::Failed {
                    message: message_of(e),
                }
            } else {
                match answer.get("data").and_then(|d| d.get(*key)) {
                    None | Some(Json::Null) => FieldOutcome::NoAnswer {
                        message: if pathless.is_empty() {
                            "the answer holds no result for this field".to_string()
                        } else {
                            pathless.join("; ")
                        },
                    },
                    Some(v) => from_responses(v),
                }
            };
            (key.to_string(), outcome)
        })
        .collect()
}

fn message_of(e: &Json) -> String {
    e.get("message")
        .and_then(Json::as_str)
        .unwrap_or("an error without a message")
        .to_string()
}

fn from_responses(v: &Json) -> FieldOutcome {
    let mut pairs = Vec::new();
    collect_responses(v, 0, &mut pairs);
    if pairs.is_empty() {
        return FieldOutcome::NoAnswer {
            message: "the result holds no response".to_string(),
        };
    }
    let failed: Vec<String> = pairs
        .iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, m)| m.clone())
        .collect();
    if failed.is_empty() {
        FieldOutcome::Accepted {
            messages: pairs.into_iter().map(|(_, m)| m).collect(),
        }
    } else {
        FieldOutcome::Failed {
            message: failed.join("; "),
        }
    }
}

/// Every `response: [ok, message]` pair under `v` (bounded depth: the nesting Cylc
/// uses is 4 levels; a deeper answer is not Cylc's).
fn collect_responses(v: &Json, depth: usize, out: &mut Vec<(bool, String)>) {
    if depth > 16 {
        return;
    }
    match v {
        Json::Object(o) => {
            if let Some(Json::Array(pair)) = o.get("response") {
                let ok = pair.first().and_then(Json::as_bool).unwrap_or(false);
                let msg = match pair.get(1) {
                    Some(Json::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                out.push((ok, msg));
                return;
            }
            for x in o.values() {
                collect_responses(x, depth + 1, out);
            }
        }
        Json::Array(a) => {
            for x in a {
                collect_responses(x, depth + 1, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers captured from a real `cylc hubapp` (cylc-uiserver 1.10, cylc-flow 8.7).
    fn real(name: &str) -> Json {
        let all: Json = serde_json::from_str(include_str!("testdata/cylc-answers.json")).unwrap();
        all["answers"][name].clone()
    }

    #[test]
    fn denial_has_graphqls_shape_like_cylcs_own() {
        let d = denial(&["pause"], "Steward: bob may not pause ~alice/w1");
        assert_eq!(d["data"]["pause"], Json::Null);
        assert_eq!(d["errors"][0]["path"], json!(["pause"]));
        assert_eq!(
            d["errors"][0]["message"],
            "Steward: bob may not pause ~alice/w1"
        );
        // The same keys as cylc-uiserver's own refusal.
        let cylc = real("stranger");
        assert_eq!(
            cylc.as_object().unwrap().keys().collect::<Vec<_>>(),
            d.as_object().unwrap().keys().collect::<Vec<_>>()
        );
        let d = denial(&["a", "b"], "no");
        assert_eq!(d["errors"].as_array().unwrap().len(), 2);
        assert_eq!(denial(&[], "unreadable")["data"], Json::Null);
    }

    #[test]
    fn accepted_mutations_from_a_real_answer() {
        for (name, key) in [("pause", "pause"), ("hold", "hold"), ("resume", "resume")] {
            let o = outcomes(&real(name), &[key]);
            assert!(o[0].1.ok(), "{name}: {:?}", o[0].1);
        }
    }

    #[test]
    fn failures_from_real_answers() {
        let o = outcomes(&real("nomatch"), &["stop"]);
        assert_eq!(
            o[0].1,
            FieldOutcome::Failed {
                message: "No matching workflows".into()
            }
        );
        let o = outcomes(&real("badtask"), &["hold"]);
        assert!(
            matches!(&o[0].1, FieldOutcome::Failed { message } if message.starts_with("Invalid ID"))
        );
        let o = outcomes(&real("stranger"), &["pause"]);
        assert_eq!(
            o[0].1,
            FieldOutcome::Failed {
                message: "HTTP 403: Forbidden".into()
            }
        );
        let o = outcomes(&real("unknownfield"), &["frob"]);
        assert!(matches!(&o[0].1, FieldOutcome::NoAnswer { message } if message.contains("frob")));
    }

    #[test]
    fn aliased_fields_each_get_their_outcome() {
        let o = outcomes(&real("aliased"), &["a", "b"]);
        assert!(o[0].1.ok());
        assert!(!o[1].1.ok());
    }

    #[test]
    fn junk_answers_never_panic() {
        for j in [
            json!(null),
            json!([]),
            json!({"data": 5}),
            json!({"errors": "x"}),
            json!({"data": {"pause": {"result": [{"response": "x"}]}}}),
            json!({"data": {"pause": {"result": [{"response": []}]}}}),
        ] {
            let o = outcomes(&j, &["pause"]);
            assert!(!o[0].1.ok(), "{j}");
        }
    }
}
