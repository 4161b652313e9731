//! Workflow and task ids in Cylc's form: `~owner/workflow//cycle/task/job`.
//!
//! Ids arrive from browsers and end up in file paths on the UI server, so the
//! grammar is deliberately narrow: every segment is a plain name, never `.`/`..`,
//! never empty, never containing a separator or control character.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("id is empty")]
    Empty,
    #[error("id {id:?}: {what} {segment:?} is not a valid name (letters, digits, '_', '-', '.', '+', not starting with '.'; at most 128 characters)")]
    BadSegment {
        id: String,
        what: &'static str,
        segment: String,
    },
    #[error("id {id:?}: expected `~owner/workflow//cycle/task/job`; {why}")]
    Shape { id: String, why: &'static str },
}

const MAX_SEGMENT: usize = 128;

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SEGMENT
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+'))
}

fn check(id: &str, what: &'static str, segment: &str) -> Result<(), IdError> {
    if valid_segment(segment) {
        Ok(())
    } else {
        Err(IdError::BadSegment {
            id: id.to_string(),
            what,
            segment: segment.to_string(),
        })
    }
}

/// A workflow name, possibly hierarchical (`atmosphere_stage/run1`).
pub fn validate_workflow_name(name: &str) -> Result<(), IdError> {
    if name.is_empty() {
        return Err(IdError::Empty);
    }
    for seg in name.split('/') {
        check(name, "workflow name segment", seg)?;
    }
    Ok(())
}

/// A Unix user name as Steward accepts it anywhere (POSIX portable, as useradd does).
pub fn validate_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WorkflowId {
    pub owner: String,
    pub name: String,
}

impl fmt::Display for WorkflowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "~{}/{}", self.owner, self.name)
    }
}

/// A task (or job, when `job` is set) inside a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskId {
    pub workflow: WorkflowId,
    pub cycle: String,
    pub task: Option<String>,
    pub job: Option<u32>,
}

impl TaskId {
    /// Parses `~owner/workflow//cycle[/task[/job]]`; `default_owner` fills in a missing `~owner`.
    pub fn parse(id: &str, default_owner: &str) -> Result<TaskId, IdError> {
        let (workflow_part, rest) = id.split_once("//").ok_or_else(|| IdError::Shape {
            id: id.to_string(),
            why: "the `//` between workflow and cycle is missing",
        })?;
        let workflow = WorkflowId::parse(workflow_part, default_owner)?;
        let mut parts = rest.split('/');
        let cycle = parts.next().unwrap_or_default();
        check(id, "cycle point", cycle)?;
        let task = match parts.next() {
            Some(t) => {
                check(id, "task name", t)?;
                Some(t.to_string())
            }
            None => None,
        };
        let job = match parts.next() {
            Some(j) => Some(j.parse::<u32>().map_err(|_| IdError::BadSegment {
                id: id.to_string(),
                what: "job number",
                segment: j.to_string(),
            })?),
            None => None,
        };
        if parts.next().is_some() {
            return Err(IdError::Shape {
                id: id.to_string(),
                why: "too many segments after the job number",
            });
        }
        Ok(TaskId {
            workflow,
            cycle: cycle.to_string(),
            task,
            job,
        })
    }

    /// The dotted form used in human audit lines: `workflow.task.cycle` (as Cylc prints).
    pub fn dotted(&self) -> String {
        let mut s = self.workflow.name.clone();
        if let Some(t) = &self.task {
            s.push('.');
            s.push_str(t);
        }
        s.push('.');
        s.push_str(&self.cycle);
        s
    }
}

impl TaskId {
    /// The part after `//`: `cycle[/task][/job]` (job as two digits).
    pub fn path(&self) -> String {
        let mut s = self.cycle.clone();
        if let Some(t) = &self.task {
            s.push('/');
            s.push_str(t);
        }
        if let Some(j) = self.job {
            s.push_str(&format!("/{j:02}"));
        }
        s
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}//{}", self.workflow, self.path())
    }
}

impl WorkflowId {
    /// Parses `~owner/workflow` or `workflow` (owner taken from `default_owner`).
    pub fn parse(id: &str, default_owner: &str) -> Result<WorkflowId, IdError> {
        if id.is_empty() {
            return Err(IdError::Empty);
        }
        let (owner, name) = match id.strip_prefix('~') {
            Some(rest) => rest.split_once('/').ok_or_else(|| IdError::Shape {
                id: id.to_string(),
                why: "`~owner` must be followed by `/workflow`",
            })?,
            None => (default_owner, id),
        };
        if !validate_user_name(owner) {
            return Err(IdError::BadSegment {
                id: id.to_string(),
                what: "owner",
                segment: owner.to_string(),
            });
        }
        validate_workflow_name(name).map_err(|e| match e {
            IdError::Empty => IdError::Shape {
                id: id.to_string(),
                why: "the workflow name is empty",
            },
            other => other,
        })?;
        Ok(WorkflowId {
            owner: owner.to_string(),
            name: name.to_string(),
        })
    }
}

/// What an operation acts on: a whole workflow, or a cycle point, task or job inside it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Target {
    pub workflow: WorkflowId,
    pub cycle: Option<String>,
    pub task: Option<String>,
    pub job: Option<u32>,
}

impl Target {
    /// Parses `workflow` or `workflow//cycle[/task[/job]]`, each with an optional
    /// `~owner/` (`default_owner` fills in a missing one). Checking that the owner is the
    /// one the caller serves is the caller's business.
    pub fn parse(id: &str, default_owner: &str) -> Result<Target, IdError> {
        if id.contains("//") {
            let t = TaskId::parse(id, default_owner)?;
            Ok(Target {
                workflow: t.workflow,
                cycle: Some(t.cycle),
                task: t.task,
                job: t.job,
            })
        } else {
            Ok(Target {
                workflow: WorkflowId::parse(id, default_owner)?,
                cycle: None,
                task: None,
                job: None,
            })
        }
    }

    /// `cycle[/task][/job]` for a target inside a workflow; None for a whole workflow.
    pub fn task_path(&self) -> Option<String> {
        let cycle = self.cycle.as_ref()?;
        let mut s = cycle.clone();
        if let Some(t) = &self.task {
            s.push('/');
            s.push_str(t);
        }
        if let Some(j) = self.job {
            s.push_str(&format!("/{j:02}"));
        }
        Some(s)
    }
}

/// Relative to the owner: `workflow[//cycle[/task[/job]]]`.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.workflow.name)?;
        match self.task_path() {
            Some(p) => write!(f, "//{p}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod target_tests {
    use super::*;

    #[test]
    fn targets_parse_workflows_tasks_and_jobs() {
        let t = Target::parse("forecast", "alice").unwrap();
        assert_eq!(t.workflow.owner, "alice");
        assert_eq!((t.task_path(), t.to_string()), (None, "forecast".into()));
        let t = Target::parse("~bob/forecast//20260101T00/model/2", "alice").unwrap();
        assert_eq!(t.workflow.owner, "bob");
        assert_eq!(t.task_path().as_deref(), Some("20260101T00/model/02"));
        assert_eq!(t.to_string(), "forecast//20260101T00/model/02");
        assert!(Target::parse("forecast//1/a/b/c", "alice").is_err());
        assert!(Target::parse("", "alice").is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_job_id() {
        let id = TaskId::parse("~alice/atmos/run1//20260101T00Z/clouds/02", "x").unwrap();
        assert_eq!(id.workflow.owner, "alice");
        assert_eq!(id.workflow.name, "atmos/run1");
        assert_eq!(id.cycle, "20260101T00Z");
        assert_eq!(id.task.as_deref(), Some("clouds"));
        assert_eq!(id.job, Some(2));
        assert_eq!(id.to_string(), "~alice/atmos/run1//20260101T00Z/clouds/02");
    }

    #[test]
    fn default_owner_fills_in() {
        let id = WorkflowId::parse("demo", "bob").unwrap();
        assert_eq!(id.to_string(), "~bob/demo");
    }

    #[test]
    fn rejects_traversal_and_junk() {
        for bad in [
            "",
            "~alice/../etc//1/x",
            "~alice/a//1/../x",
            "~alice/a//1/x/notanumber",
            "~alice/a//1/x/1/extra",
            "~ALICE/a",
            "~alice",
            "a\nb",
            "~alice/a//",
            "~alice/.hidden",
            "~alice/a//1/t\u{0}",
        ] {
            assert!(
                TaskId::parse(bad, "alice").is_err() && WorkflowId::parse(bad, "alice").is_err()
                    || bad.contains("//") && TaskId::parse(bad, "alice").is_err(),
                "{bad:?} accepted"
            );
        }
    }
}
