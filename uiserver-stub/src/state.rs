//! A workflow's run state: what the scheduler owns, persists in `state.json`, and
//! sends to the UI server. The wire views (`WorkflowSummary`, `TaskState`) are derived
//! from it in one place so the summary, the snapshot and the deltas always agree.

use crate::flow::Flow;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use steward_protocol::wire::{TaskState, WorkflowSummary};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowStatus {
    Running,
    Paused,
    Stopping,
    Stopped,
}

impl WorkflowStatus {
    pub fn name(self) -> &'static str {
        match self {
            WorkflowStatus::Running => "running",
            WorkflowStatus::Paused => "paused",
            WorkflowStatus::Stopping => "stopping",
            WorkflowStatus::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskStatus {
    Waiting,
    Running,
    Succeeded,
    Failed,
    SubmitFailed,
    Removed,
}

impl TaskStatus {
    pub fn name(self) -> &'static str {
        match self {
            TaskStatus::Waiting => "waiting",
            TaskStatus::Running => "running",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::SubmitFailed => "submit-failed",
            TaskStatus::Removed => "removed",
        }
    }
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::SubmitFailed
        )
    }
}

/// A broadcast: environment settings for future jobs in a scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broadcast {
    /// `None` = every cycle.
    pub cycle: Option<String>,
    /// `None` = every task.
    pub task: Option<String>,
    pub env: BTreeMap<String, String>,
}

impl Broadcast {
    pub fn applies(&self, cycle: &str, task: &str) -> bool {
        self.cycle.as_deref().is_none_or(|c| c == cycle)
            && self.task.as_deref().is_none_or(|t| t == task)
    }
    /// Workflow-wide first, then cycle, then task: more specific wins.
    pub fn specificity(&self) -> u8 {
        u8::from(self.cycle.is_some()) + 2 * u8::from(self.task.is_some())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub cycle: String,
    pub task: String,
    pub status: TaskStatus,
    #[serde(default)]
    pub held: bool,
    /// Jobs submitted so far; the latest job is `submit_num` (01, 02, ...).
    #[serde(default)]
    pub submit_num: u32,
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Completed outputs (`started`, `succeeded`, `failed`, custom).
    #[serde(default)]
    pub outputs: BTreeSet<String>,
    /// Prerequisites forced satisfied by `set` (in `task[-N]:output` form).
    #[serde(default)]
    pub forced_prereqs: BTreeSet<String>,
    /// The external trigger this task waits for has arrived.
    #[serde(default)]
    pub ext_triggered: bool,
    /// Last task messages (`message` op, kill/stop notes), newest last.
    #[serde(default)]
    pub messages: Vec<String>,
}

impl TaskRecord {
    pub fn new(cycle: &str, task: &str) -> TaskRecord {
        TaskRecord {
            cycle: cycle.to_string(),
            task: task.to_string(),
            status: TaskStatus::Waiting,
            held: false,
            submit_num: 0,
            pid: None,
            exit_code: None,
            outputs: BTreeSet::new(),
            forced_prereqs: BTreeSet::new(),
            ext_triggered: false,
            messages: Vec::new(),
        }
    }

    /// The state name on the wire: Cylc's, with a held waiting task shown as `held`.
    pub fn wire_state(&self) -> &'static str {
        if self.held && self.status == TaskStatus::Waiting {
            "held"
        } else {
            self.status.name()
        }
    }

    pub fn to_wire(&self) -> TaskState {
        TaskState {
            cycle: self.cycle.clone(),
            task: self.task.clone(),
            state: self.wire_state().to_string(),
            job: (self.submit_num > 0).then_some(self.submit_num),
        }
    }

    pub fn note(&mut self, msg: String) {
        self.messages.push(msg);
        if self.messages.len() > 20 {
            self.messages.remove(0);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowState {
    pub name: String,
    pub status: WorkflowStatus,
    #[serde(default)]
    pub scheduler_pid: Option<u32>,
    #[serde(default)]
    pub hold_point: Option<String>,
    #[serde(default = "default_extent")]
    pub graph_window_extent: u32,
    #[serde(default = "default_verbosity")]
    pub verbosity: String,
    #[serde(default)]
    pub broadcasts: Vec<Broadcast>,
    /// `ext_trigger` messages received (message, cycle or all).
    #[serde(default)]
    pub ext_triggers: Vec<(String, Option<String>)>,
    /// Every task instance still failed and nothing can run.
    #[serde(default)]
    pub stalled: bool,
    pub tasks: Vec<TaskRecord>,
}

fn default_extent() -> u32 {
    1
}
fn default_verbosity() -> String {
    "INFO".to_string()
}

impl WorkflowState {
    /// A never-played workflow: every task instance waiting, the workflow stopped.
    pub fn fresh(name: &str, flow: &Flow) -> WorkflowState {
        let mut s = WorkflowState {
            name: name.to_string(),
            status: WorkflowStatus::Stopped,
            scheduler_pid: None,
            hold_point: None,
            graph_window_extent: 1,
            verbosity: default_verbosity(),
            broadcasts: Vec::new(),
            ext_triggers: Vec::new(),
            stalled: false,
            tasks: Vec::new(),
        };
        s.sync_with(flow);
        s
    }

    /// Makes the task list match `flow`: adds instances for new tasks/cycles, drops
    /// those no longer defined unless a job is active, orders by cycle then task order.
    pub fn sync_with(&mut self, flow: &Flow) {
        let mut old: BTreeMap<(String, String), TaskRecord> = std::mem::take(&mut self.tasks)
            .into_iter()
            .map(|t| ((t.cycle.clone(), t.task.clone()), t))
            .collect();
        let mut tasks = Vec::with_capacity(flow.cycles.len() * flow.tasks.len());
        for c in &flow.cycles {
            for t in &flow.tasks {
                let key = (c.clone(), t.name.clone());
                tasks.push(
                    old.remove(&key)
                        .unwrap_or_else(|| TaskRecord::new(c, &t.name)),
                );
            }
        }
        // Undefined now, but still running: keep until it finishes.
        tasks.extend(
            old.into_values()
                .filter(|t| t.status == TaskStatus::Running),
        );
        self.tasks = tasks;
        if self
            .hold_point
            .as_ref()
            .is_some_and(|p| flow.cycle_index(p).is_none())
        {
            self.hold_point = None;
        }
    }

    pub fn task(&self, cycle: &str, task: &str) -> Option<&TaskRecord> {
        self.tasks
            .iter()
            .find(|t| t.cycle == cycle && t.task == task)
    }

    pub fn counts(&self) -> BTreeMap<String, u32> {
        let mut counts = BTreeMap::new();
        for t in &self.tasks {
            *counts.entry(t.wire_state().to_string()).or_insert(0) += 1;
        }
        counts
    }

    pub fn summary(&self, with_tasks: bool) -> WorkflowSummary {
        WorkflowSummary {
            name: self.name.clone(),
            state: self.status.name().to_string(),
            counts: self.counts(),
            tasks: if with_tasks {
                self.tasks.iter().map(TaskRecord::to_wire).collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Reads `state.json` as a stopped workflow (no scheduler is attached to it).
    pub fn load_stopped(path: &std::path::Path) -> Option<WorkflowState> {
        let bytes = std::fs::read(path).ok()?;
        let mut s: WorkflowState = serde_json::from_slice(&bytes).ok()?;
        s.status = WorkflowStatus::Stopped;
        s.scheduler_pid = None;
        Some(s)
    }
}
