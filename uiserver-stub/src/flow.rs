//! The workflow definition: `~/.steward/workflows/<name>/flow.toml`.
//!
//! ```toml
//! description = "two greetings per cycle"
//! cycles = ["1", "2", "3"]          # or { from = 1, to = 10 }  (integer points)
//! runahead = 2                      # cycles that may be active at once (default 2)
//! [env]                             # environment for every job
//! PLANET = "earth"
//! [tasks.hello]
//! script = "echo hello; sleep 2"
//! [tasks.world]
//! script = 'echo "$GREETING $PLANET"'
//! after = ["hello", "world[-1]"]    # deps: task[, [-N] = N cycles earlier][:output]
//! env = { GREETING = "hi" }
//! outputs = ["ready"]               # custom outputs, completed by the `message` op
//! ext_trigger = "data ready"        # waits for an `ext_trigger` op with this message
//! ```
//! Parsing rejects unknown keys, unknown tasks in `after`, undeclared outputs, bad
//! names and dependency loops within a cycle, with the line/column toml gives us.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Built-in task outputs; custom ones are declared per task.
pub const BUILTIN_OUTPUTS: [&str; 3] = ["started", "succeeded", "failed"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowFile {
    #[serde(default)]
    description: String,
    #[serde(default)]
    cycles: Option<CyclesFile>,
    #[serde(default)]
    runahead: Option<usize>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    tasks: toml::value::Table,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CyclesFile {
    List(Vec<String>),
    Range { from: i64, to: i64 },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskFile {
    script: String,
    #[serde(default)]
    after: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    outputs: Vec<String>,
    #[serde(default)]
    ext_trigger: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub description: String,
    pub cycles: Vec<String>,
    pub runahead: usize,
    pub env: BTreeMap<String, String>,
    /// In dependency order within a cycle (upstream first), ties alphabetical.
    pub tasks: Vec<TaskDef>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskDef {
    pub name: String,
    pub script: String,
    pub after: Vec<Dep>,
    pub env: BTreeMap<String, String>,
    pub outputs: Vec<String>,
    pub ext_trigger: Option<String>,
}

/// `task[-offset]:output`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dep {
    pub task: String,
    /// 0 = same cycle, N = N cycles earlier.
    pub offset: usize,
    pub output: String,
}

impl std::fmt::Display for Dep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.task)?;
        if self.offset > 0 {
            write!(f, "[-{}]", self.offset)?;
        }
        write!(f, ":{}", self.output)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl Flow {
    pub fn load(path: &Path) -> Result<Flow, FlowError> {
        let text = std::fs::read_to_string(path).map_err(|source| FlowError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Flow::parse(&text).map_err(|message| FlowError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    pub fn parse(text: &str) -> Result<Flow, String> {
        let file: FlowFile = toml::from_str(text).map_err(|e| e.to_string().trim().to_string())?;
        let cycles = match file.cycles {
            None => vec!["1".to_string()],
            Some(CyclesFile::List(l)) => l,
            Some(CyclesFile::Range { from, to }) => {
                if to < from || to - from >= 100_000 {
                    return Err(format!(
                        "cycles = {{ from = {from}, to = {to} }}: need from <= to and at most 100000 points"
                    ));
                }
                (from..=to).map(|i| i.to_string()).collect()
            }
        };
        if cycles.is_empty() {
            return Err("cycles is empty: list at least one cycle point".into());
        }
        let mut seen = BTreeSet::new();
        for c in &cycles {
            if !valid_name(c) {
                return Err(format!(
                    "cycle point {c:?} is not a valid name (letters, digits, '_', '-', '.', '+')"
                ));
            }
            if !seen.insert(c) {
                return Err(format!("cycle point {c:?} is listed twice"));
            }
        }
        for k in file.env.keys() {
            check_env_name(k).map_err(|e| format!("[env]: {e}"))?;
        }
        if file.tasks.is_empty() {
            return Err("no tasks: add at least one [tasks.<name>] table".into());
        }
        // toml tables are key-ordered, so ties in the topological order are alphabetical.
        let mut raw: Vec<(String, TaskFile)> = Vec::new();
        for (name, value) in file.tasks {
            if !valid_name(&name) {
                return Err(format!(
                    "[tasks.{name}]: task name is not valid (letters, digits, '_', '-', '.', '+')"
                ));
            }
            let t: TaskFile = value
                .try_into()
                .map_err(|e: toml::de::Error| format!("[tasks.{name}]: {}", e.message()))?;
            raw.push((name, t));
        }
        let names: BTreeSet<&str> = raw.iter().map(|(n, _)| n.as_str()).collect();
        let outputs_of: BTreeMap<&str, &Vec<String>> =
            raw.iter().map(|(n, t)| (n.as_str(), &t.outputs)).collect();
        let mut tasks = Vec::new();
        for (name, t) in &raw {
            if t.script.trim().is_empty() {
                return Err(format!("[tasks.{name}]: script is empty"));
            }
            for k in t.env.keys() {
                check_env_name(k).map_err(|e| format!("[tasks.{name}].env: {e}"))?;
            }
            for o in &t.outputs {
                if !valid_name(o) || BUILTIN_OUTPUTS.contains(&o.as_str()) {
                    return Err(format!(
                        "[tasks.{name}]: output {o:?} is not a valid custom output name"
                    ));
                }
            }
            let mut after = Vec::new();
            for d in &t.after {
                let dep = parse_dep(d).map_err(|e| format!("[tasks.{name}]: after {d:?}: {e}"))?;
                if !names.contains(dep.task.as_str()) {
                    return Err(format!(
                        "[tasks.{name}]: after {d:?}: no task named {:?}",
                        dep.task
                    ));
                }
                if !BUILTIN_OUTPUTS.contains(&dep.output.as_str())
                    && !outputs_of[dep.task.as_str()].contains(&dep.output)
                {
                    return Err(format!(
                        "[tasks.{name}]: after {d:?}: task {:?} has no output {:?} (declare it in its `outputs`)",
                        dep.task, dep.output
                    ));
                }
                if dep.task == *name && dep.offset == 0 {
                    return Err(format!(
                        "[tasks.{name}]: a task cannot depend on itself in the same cycle"
                    ));
                }
                after.push(dep);
            }
            if let Some(x) = &t.ext_trigger {
                if x.trim().is_empty() {
                    return Err(format!("[tasks.{name}]: ext_trigger is empty"));
                }
            }
            tasks.push(TaskDef {
                name: name.clone(),
                script: t.script.clone(),
                after,
                env: t.env.clone(),
                outputs: t.outputs.clone(),
                ext_trigger: t.ext_trigger.clone(),
            });
        }
        let tasks = topo_sort(tasks)?;
        Ok(Flow {
            description: file.description,
            cycles,
            runahead: file.runahead.unwrap_or(2).max(1),
            env: file.env,
            tasks,
        })
    }

    pub fn task(&self, name: &str) -> Option<&TaskDef> {
        self.tasks.iter().find(|t| t.name == name)
    }

    pub fn cycle_index(&self, cycle: &str) -> Option<usize> {
        self.cycles.iter().position(|c| c == cycle)
    }
}

fn valid_name(s: &str) -> bool {
    steward_protocol::ids::validate_workflow_name(s).is_ok() && !s.contains('/')
}

/// Environment variable names jobs may receive: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn check_env_name(k: &str) -> Result<(), String> {
    let ok = k
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && k.len() <= 128;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{k:?} is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)"
        ))
    }
}

fn parse_dep(s: &str) -> Result<Dep, String> {
    let (head, output) = match s.split_once(':') {
        Some((h, o)) => (h, o.to_string()),
        None => (s, "succeeded".to_string()),
    };
    let (task, offset) = match head.split_once('[') {
        Some((t, rest)) => {
            let n = rest
                .strip_suffix(']')
                .and_then(|r| r.strip_prefix('-'))
                .and_then(|r| r.parse::<usize>().ok())
                .filter(|n| *n > 0)
                .ok_or("cycle offset must look like [-1]")?;
            (t, n)
        }
        None => (head, 0),
    };
    if !valid_name(task) {
        return Err(format!("{task:?} is not a task name"));
    }
    if !valid_name(&output) {
        return Err(format!("{output:?} is not an output name"));
    }
    Ok(Dep {
        task: task.to_string(),
        offset,
        output,
    })
}

/// Orders tasks upstream-first by their same-cycle dependencies; a loop is an error.
fn topo_sort(tasks: Vec<TaskDef>) -> Result<Vec<TaskDef>, String> {
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::with_capacity(tasks.len());
    let mut pending = tasks;
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for t in pending {
            if t.after
                .iter()
                .all(|d| d.offset > 0 || done.contains(&d.task))
            {
                done.insert(t.name.clone());
                out.push(t);
            } else {
                rest.push(t);
            }
        }
        if rest.len() == before {
            let names: Vec<_> = rest.iter().map(|t| t.name.as_str()).collect();
            return Err(format!(
                "dependency loop within a cycle among tasks {}",
                names.join(", ")
            ));
        }
        pending = rest;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_example() {
        let f = Flow::parse(
            r#"
description = "d"
cycles = ["1", "2"]
[env]
A = "b"
[tasks.world]
script = "echo world"
after = ["hello", "world[-1]", "hello:ready"]
env = { GREETING = "hi" }
[tasks.hello]
script = "echo hello"
outputs = ["ready"]
"#,
        )
        .unwrap();
        assert_eq!(f.cycles, ["1", "2"]);
        assert_eq!(f.tasks[0].name, "hello");
        assert_eq!(f.tasks[1].after[1].offset, 1);
        assert_eq!(f.tasks[1].after[2].output, "ready");
    }

    #[test]
    fn rejects_bad_definitions() {
        for (text, want) in [
            ("[tasks.a]\nscript='x'\nafter=['b']", "no task named"),
            (
                "[tasks.a]\nscript='x'\nafter=['b']\n[tasks.b]\nscript='y'\nafter=['a']",
                "loop",
            ),
            ("[tasks.a]\nscript='x'\nbogus=1", "unknown field"),
            ("cycles=['1','1']\n[tasks.a]\nscript='x'", "twice"),
            ("cycles=['..']\n[tasks.a]\nscript='x'", "not a valid"),
            (
                "[tasks.a]\nscript='x'\nafter=['b:foo']\n[tasks.b]\nscript='y'",
                "no output",
            ),
            (
                "[tasks.a]\nscript='x'\nenv={'1X'='y'}",
                "environment variable",
            ),
            ("", "no tasks"),
        ] {
            let e = Flow::parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn range_cycles() {
        let f = Flow::parse("cycles={from=1,to=3}\n[tasks.a]\nscript='x'").unwrap();
        assert_eq!(f.cycles, ["1", "2", "3"]);
    }
}
