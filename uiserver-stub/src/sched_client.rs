//! The UI server's view of the owner's workflows, and its connections to schedulers.
//!
//! `Registry` holds one `WfView` per workflow found under `~/.steward/workflows`: the
//! wire view (state + tasks) the snapshot, summary and deltas are made from. For a
//! running workflow the view is fed by the scheduler's pushed events over its socket;
//! for a stopped one it comes from `state.json` (or the definition, if never played).
//! Every change becomes one pre-serialised `ServerMessage::Delta`, broadcast once and
//! cloned by reference to each WebSocket, so fan-out costs no re-serialisation.

use crate::flow::Flow;
use crate::paths::{scan_workflows, Layout};
use crate::sched_proto::{read_line, SchedEvent, SchedRequest};
use crate::state::{WorkflowState, WorkflowStatus};
use bytestring::ByteString;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use steward_protocol::wire::{ServerMessage, TaskState, WorkflowSummary};
use steward_protocol::Operation;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, mpsc, oneshot};

/// One change for WebSocket clients: a ready-to-send delta frame, or "resend a snapshot".
#[derive(Clone, Debug)]
pub struct Update {
    pub workflow: Arc<str>,
    /// `None`: the workflow changed shape (reload, clean); send a fresh snapshot.
    pub frame: Option<ByteString>,
    /// The delta behind `frame`, so a client that fell behind can merge a run of
    /// deltas into one frame instead of sending each.
    pub delta: Option<Arc<DeltaParts>>,
}

#[derive(Debug)]
pub struct DeltaParts {
    pub state: Option<String>,
    pub tasks: Vec<TaskState>,
}

impl Update {
    /// Merges consecutive deltas of one workflow (later task entries win).
    pub fn merge(workflow: &str, run: &[Update]) -> String {
        let mut state = None;
        let mut tasks: Vec<TaskState> = Vec::new();
        let mut index: HashMap<(&str, &str), usize> = HashMap::new();
        for u in run {
            let Some(d) = &u.delta else { continue };
            if d.state.is_some() {
                state = d.state.clone();
            }
            for t in &d.tasks {
                match index.get(&(t.cycle.as_str(), t.task.as_str())) {
                    Some(&i) => tasks[i] = t.clone(),
                    None => {
                        index.insert((t.cycle.as_str(), t.task.as_str()), tasks.len());
                        tasks.push(t.clone());
                    }
                }
            }
        }
        serde_json::to_string(&ServerMessage::Delta {
            workflow: workflow.to_string(),
            state,
            tasks,
        })
        .unwrap_or_default()
    }
}

/// The wire view of one workflow.
#[derive(Debug, Clone)]
pub struct WfView {
    pub name: String,
    pub state: String,
    pub tasks: Vec<TaskState>,
    index: HashMap<(String, String), usize>,
    /// Why the definition cannot be used, if it cannot.
    pub error: Option<String>,
}

impl WfView {
    pub fn from_state(s: &WorkflowState) -> WfView {
        let tasks: Vec<TaskState> = s.tasks.iter().map(|t| t.to_wire()).collect();
        let mut v = WfView {
            name: s.name.clone(),
            state: s.status.name().to_string(),
            tasks,
            index: HashMap::new(),
            error: None,
        };
        v.reindex();
        v
    }

    fn reindex(&mut self) {
        self.index = self
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| ((t.cycle.clone(), t.task.clone()), i))
            .collect();
    }

    /// What a stopped workflow looks like on disk: its last state, or its definition.
    pub fn load_stopped(layout: &Layout, name: &str) -> WfView {
        let flow = Flow::load(&layout.flow_file(name));
        let mut view = match (WorkflowState::load_stopped(&layout.state_file(name)), &flow) {
            (Some(mut s), Ok(f)) => {
                s.sync_with(f);
                WfView::from_state(&s)
            }
            (Some(s), Err(_)) => WfView::from_state(&s),
            (None, Ok(f)) => WfView::from_state(&WorkflowState::fresh(name, f)),
            (None, Err(_)) => WfView {
                name: name.to_string(),
                state: WorkflowStatus::Stopped.name().to_string(),
                tasks: Vec::new(),
                index: HashMap::new(),
                error: None,
            },
        };
        view.name = name.to_string();
        view.error = flow.err().map(|e| e.to_string());
        view
    }

    pub fn apply(&mut self, status: Option<WorkflowStatus>, tasks: &[TaskState]) {
        if let Some(s) = status {
            self.state = s.name().to_string();
        }
        for t in tasks {
            match self.index.get(&(t.cycle.clone(), t.task.clone())) {
                Some(&i) => self.tasks[i] = t.clone(),
                None => {
                    self.index
                        .insert((t.cycle.clone(), t.task.clone()), self.tasks.len());
                    self.tasks.push(t.clone());
                }
            }
        }
    }

    pub fn summary(&self, with_tasks: bool) -> WorkflowSummary {
        let mut counts = BTreeMap::new();
        for t in &self.tasks {
            *counts.entry(t.state.clone()).or_insert(0) += 1;
        }
        WorkflowSummary {
            name: self.name.clone(),
            state: self.state.clone(),
            counts,
            tasks: if with_tasks {
                self.tasks.clone()
            } else {
                Vec::new()
            },
        }
    }
}

/// A live connection to one scheduler.
#[derive(Clone)]
pub struct SchedHandle {
    tx: mpsc::UnboundedSender<String>,
    pending: Arc<Mutex<HashMap<u64, oneshot::Sender<SchedEvent>>>>,
    next_id: Arc<AtomicU64>,
    /// Distinguishes this connection from a later one to the same workflow.
    pub generation: u64,
}

impl SchedHandle {
    async fn call(&self, make: impl FnOnce(u64) -> SchedRequest) -> Result<SchedEvent, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        let line = serde_json::to_string(&make(id)).map_err(|e| e.to_string())?;
        self.tx
            .send(line)
            .map_err(|_| "the scheduler connection is closed".to_string())?;
        match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(ev)) => Ok(ev),
            Ok(Err(_)) => Err("the scheduler went away before answering".into()),
            Err(_) => Err("the scheduler did not answer within 30 s".into()),
        }
    }

    pub async fn op(
        &self,
        op: Operation,
        cycle: Option<String>,
        task: Option<String>,
        job: Option<u32>,
        args: BTreeMap<String, serde_json::Value>,
    ) -> Result<(bool, String), String> {
        match self
            .call(|id| SchedRequest::Op {
                id,
                op,
                cycle,
                task,
                job,
                args,
            })
            .await?
        {
            SchedEvent::Reply { ok, message, .. } => Ok((ok, message)),
            other => Err(format!("unexpected scheduler answer {other:?}")),
        }
    }

    pub async fn detail(&self) -> Result<WorkflowState, String> {
        match self.call(|id| SchedRequest::Detail { id }).await? {
            SchedEvent::Detail { state, .. } => Ok(*state),
            other => Err(format!("unexpected scheduler answer {other:?}")),
        }
    }
}

struct Entry {
    view: WfView,
    conn: Option<SchedHandle>,
}

pub struct Registry {
    pub layout: Layout,
    pub owner: String,
    entries: Mutex<BTreeMap<String, Entry>>,
    pub updates: broadcast::Sender<Update>,
    runtime: tokio::runtime::Handle,
    generation: AtomicU64,
}

impl Registry {
    pub fn new(layout: Layout, owner: String, runtime: tokio::runtime::Handle) -> Arc<Registry> {
        let (updates, _) = broadcast::channel(65536);
        Arc::new(Registry {
            layout,
            owner,
            entries: Mutex::new(BTreeMap::new()),
            updates,
            runtime,
            generation: AtomicU64::new(1),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.lock().contains_key(name)
    }

    pub fn handle(&self, name: &str) -> Option<SchedHandle> {
        self.lock().get(name).and_then(|e| e.conn.clone())
    }

    pub fn view_error(&self, name: &str) -> Option<String> {
        self.lock().get(name).and_then(|e| e.view.error.clone())
    }

    /// Summaries of all workflows, or only `only`.
    pub fn summaries(&self, only: Option<&str>, with_tasks: bool) -> Vec<WorkflowSummary> {
        self.lock()
            .iter()
            .filter(|(n, _)| only.is_none_or(|o| o == n.as_str()))
            .map(|(_, e)| e.view.summary(with_tasks))
            .collect()
    }

    /// The state of one task as last reported.
    pub fn task_state(&self, wf: &str, cycle: &str, task: &str) -> Option<TaskState> {
        let entries = self.lock();
        let e = entries.get(wf)?;
        let &i = e.view.index.get(&(cycle.to_string(), task.to_string()))?;
        Some(e.view.tasks[i].clone())
    }

    fn publish(&self, workflow: &str, frame: Option<ByteString>) {
        let _ = self.updates.send(Update {
            workflow: Arc::from(workflow),
            frame,
            delta: None,
        });
    }

    /// Re-reads the workflows directory: adds new workflows, attaches to running
    /// schedulers, drops workflows whose definition is gone (unless running).
    /// Returns (all names, newly found).
    pub async fn scan(self: &Arc<Self>) -> (Vec<String>, Vec<String>) {
        let on_disk = scan_workflows(&self.layout);
        let mut new = Vec::new();
        {
            let mut entries = self.lock();
            for name in &on_disk {
                if !entries.contains_key(name) {
                    entries.insert(
                        name.clone(),
                        Entry {
                            view: WfView::load_stopped(&self.layout, name),
                            conn: None,
                        },
                    );
                    new.push(name.clone());
                }
            }
            let gone: Vec<String> = entries
                .iter()
                .filter(|(n, e)| !on_disk.contains(n) && e.conn.is_none())
                .map(|(n, _)| n.clone())
                .collect();
            for n in gone {
                entries.remove(&n);
            }
        }
        let detached: Vec<String> = {
            let entries = self.lock();
            entries
                .iter()
                .filter(|(_, e)| e.conn.is_none())
                .map(|(n, _)| n.clone())
                .collect()
        };
        for name in detached {
            if self.layout.socket(&name).exists() {
                if let Err(e) = self.attach(&name).await {
                    tracing::warn!(workflow = %name, error = %e, "scheduler socket present but not answering");
                }
            }
        }
        if !new.is_empty() {
            for n in &new {
                self.publish(n, None);
            }
        }
        (on_disk, new)
    }

    /// Replaces a stopped workflow's view from disk and tells clients.
    pub fn refresh_stopped(&self, name: &str) {
        let mut entries = self.lock();
        if let Some(e) = entries.get_mut(name) {
            if e.conn.is_none() {
                e.view = WfView::load_stopped(&self.layout, name);
            }
        }
        drop(entries);
        self.publish(name, None);
    }

    /// Connects to the scheduler of `name`, subscribes, and starts relaying its events.
    pub async fn attach(self: &Arc<Self>, name: &str) -> Result<SchedHandle, String> {
        if let Some(h) = self.handle(name) {
            return Ok(h);
        }
        let sock = self.layout.socket(name);
        let stream = UnixStream::connect(&sock)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", sock.display()))?;
        let (rd, mut wr) = stream.into_split();
        wr.write_all(b"{\"cmd\":\"subscribe\"}\n")
            .await
            .map_err(|e| format!("scheduler socket: {e}"))?;
        let mut rd = BufReader::new(rd);
        let mut buf = Vec::new();
        let first = tokio::time::timeout(Duration::from_secs(5), read_line(&mut rd, &mut buf))
            .await
            .map_err(|_| "the scheduler did not send its state within 5 s".to_string())?
            .map_err(|e| format!("scheduler socket: {e}"))?;
        if first.is_none() {
            return Err("the scheduler closed the connection".into());
        }
        let state = match serde_json::from_slice::<SchedEvent>(&buf) {
            Ok(SchedEvent::State { state }) => state,
            Ok(other) => return Err(format!("expected the scheduler's state, got {other:?}")),
            Err(e) => return Err(format!("bad scheduler message: {e}")),
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let handle = SchedHandle {
            tx,
            pending: Arc::new(Mutex::new(HashMap::new())),
            next_id: Arc::new(AtomicU64::new(1)),
            generation: self.generation.fetch_add(1, Ordering::Relaxed),
        };
        {
            let mut entries = self.lock();
            let entry = entries.entry(name.to_string()).or_insert_with(|| Entry {
                view: WfView::from_state(&state),
                conn: None,
            });
            if let Some(existing) = &entry.conn {
                // Another task attached first; use its connection.
                return Ok(existing.clone());
            }
            let error = entry.view.error.take();
            entry.view = WfView::from_state(&state);
            entry.view.name = name.to_string();
            entry.view.error = error;
            entry.conn = Some(handle.clone());
        }
        tracing::info!(workflow = %name, pid = ?state.scheduler_pid, "attached to scheduler");
        self.publish(name, None);
        self.runtime.spawn(async move {
            while let Some(line) = rx.recv().await {
                if wr.write_all(line.as_bytes()).await.is_err()
                    || wr.write_all(b"\n").await.is_err()
                {
                    break;
                }
            }
        });
        let reg = Arc::clone(self);
        let name2 = name.to_string();
        let h2 = handle.clone();
        self.runtime.spawn(async move {
            reg.relay(&name2, rd, buf, &h2).await;
            reg.detached(&name2, &h2).await;
        });
        Ok(handle)
    }

    async fn relay(
        &self,
        name: &str,
        mut rd: BufReader<tokio::net::unix::OwnedReadHalf>,
        mut buf: Vec<u8>,
        h: &SchedHandle,
    ) {
        let wf: Arc<str> = Arc::from(name);
        while let Ok(Some(())) = read_line(&mut rd, &mut buf).await {
            let ev: SchedEvent = match serde_json::from_slice(&buf) {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::warn!(workflow = %name, error = %e, "bad scheduler message");
                    continue;
                }
            };
            match ev {
                SchedEvent::Delta { status, tasks } => {
                    let stopped = status == Some(WorkflowStatus::Stopped);
                    {
                        let mut entries = self.lock();
                        if let Some(e) = entries.get_mut(name) {
                            e.view.apply(status, &tasks);
                            // The scheduler is on its way out: from now on the workflow
                            // is stopped for every decision (clean, play).
                            if stopped
                                && e.conn.as_ref().map(|c| c.generation) == Some(h.generation)
                            {
                                e.conn = None;
                            }
                        }
                    }
                    let state = status.map(|s| s.name().to_string());
                    #[derive(serde::Serialize)]
                    #[serde(tag = "type", rename = "delta")]
                    struct DeltaRef<'a> {
                        workflow: &'a str,
                        state: &'a Option<String>,
                        tasks: &'a [TaskState],
                    }
                    // Same shape as `ServerMessage::Delta`, without cloning the tasks.
                    let frame = serde_json::to_string(&DeltaRef {
                        workflow: name,
                        state: &state,
                        tasks: &tasks,
                    })
                    .unwrap_or_default();
                    let _ = self.updates.send(Update {
                        workflow: wf.clone(),
                        frame: Some(ByteString::from(frame)),
                        delta: Some(Arc::new(DeltaParts { state, tasks })),
                    });
                    if stopped {
                        break;
                    }
                }
                SchedEvent::State { state } => {
                    {
                        let mut entries = self.lock();
                        if let Some(e) = entries.get_mut(name) {
                            let error = e.view.error.take();
                            e.view = WfView::from_state(&state);
                            e.view.name = name.to_string();
                            e.view.error = error;
                        }
                    }
                    self.publish(name, None);
                }
                SchedEvent::Reply { id, .. } | SchedEvent::Detail { id, .. } => {
                    let waiter = h
                        .pending
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&id);
                    if let Some(w) = waiter {
                        let _ = w.send(ev);
                    }
                }
            }
        }
    }

    /// `attach` behind a `Send` box: breaks the attach → relay → detached → attach
    /// cycle that the compiler cannot otherwise prove `Send`.
    fn attach_boxed<'a>(
        self: &'a Arc<Self>,
        name: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<SchedHandle, String>> + Send + 'a>>
    {
        Box::pin(self.attach(name))
    }

    /// The scheduler connection ended: the workflow stopped (or the scheduler died).
    async fn detached(self: &Arc<Self>, name: &str, h: &SchedHandle) {
        h.pending.lock().unwrap_or_else(|p| p.into_inner()).clear();
        {
            let mut entries = self.lock();
            if let Some(e) = entries.get_mut(name) {
                if e.conn.as_ref().map(|c| c.generation) == Some(h.generation) {
                    e.conn = None;
                }
            }
        }
        // A scheduler that is still there (a dropped connection) gets re-attached.
        tokio::time::sleep(Duration::from_millis(50)).await;
        if self.layout.socket(name).exists() && self.attach_boxed(name).await.is_ok() {
            return;
        }
        tracing::info!(workflow = %name, "scheduler gone; workflow stopped");
        let status_before = {
            let mut entries = self.lock();
            match entries.get_mut(name) {
                Some(e) if e.conn.is_none() => {
                    let before = e.view.state.clone();
                    e.view = WfView::load_stopped(&self.layout, name);
                    Some(before)
                }
                _ => None,
            }
        };
        if status_before.is_some() {
            self.publish(name, None);
        }
    }
}
