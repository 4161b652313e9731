//! One workflow's scheduler: a detached process (see `daemon`) that owns the run
//! state, submits tasks as real processes and pushes every change to subscribers.
//!
//! It is single-threaded on purpose: one loop owns `WorkflowState`, so every state
//! change and the delta describing it happen in one place, in order. Job processes are
//! `/bin/sh -c <script>` in their own process group (so `kill` takes the whole job
//! tree), stdout/stderr to `log/job/<cycle>/<task>/<NN>/job.{out,err}`. The scheduler
//! does not depend on the UI server: it keeps running when the UI server goes, and a
//! new UI server reattaches through the socket.

use crate::flow::{Flow, TaskDef, BUILTIN_OUTPUTS};
use crate::paths::{create_private_dir, write_atomic, Layout};
use crate::sched_proto::{read_line, SchedEvent, SchedRequest};
use crate::state::{Broadcast, TaskStatus, WorkflowState, WorkflowStatus};
use anyhow::Context;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use steward_protocol::Operation;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

type Args = BTreeMap<String, Value>;

/// What an operation names: the operation, and its target within the workflow.
#[derive(Clone, Copy)]
struct Target<'a> {
    op: Operation,
    cycle: Option<&'a str>,
    task: Option<&'a str>,
    job: Option<u32>,
}
type Line = Arc<str>;

/// Seconds between SIGTERM and SIGKILL for a job being killed.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// Longest interval between state.json writes while changes are pending.
const STATE_WRITE_INTERVAL: Duration = Duration::from_millis(200);

/// Runs the scheduler for `name` until it stops (blocking; builds its own runtime).
pub fn run(layout: Layout, name: String) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(layout, name))
}

enum Cmd {
    Subscribe {
        out: mpsc::UnboundedSender<Line>,
    },
    Op {
        id: u64,
        op: Operation,
        cycle: Option<String>,
        task: Option<String>,
        job: Option<u32>,
        args: Args,
        out: mpsc::UnboundedSender<Line>,
    },
    Detail {
        id: u64,
        out: mpsc::UnboundedSender<Line>,
    },
}

struct JobExit {
    cycle: String,
    task: String,
    submit: u32,
    code: Option<i32>,
    signal: Option<i32>,
}

struct Job {
    pid: u32,
    submit: u32,
    kill_sent: Option<Instant>,
    kill_reason: Option<String>,
    /// Started by an earlier scheduler: not our child, watched by pid.
    orphan: bool,
}

struct Sched {
    layout: Layout,
    name: String,
    flow: Flow,
    st: WorkflowState,
    index: HashMap<(String, String), usize>,
    jobs: HashMap<usize, Job>,
    subscribers: Vec<mpsc::UnboundedSender<Line>>,
    changed: Vec<usize>,
    changed_mark: Vec<bool>,
    status_changed: bool,
    dirty: bool,
    last_write: Instant,
    exit_tx: mpsc::UnboundedSender<JobExit>,
    stalled_logged: bool,
    base_env: Vec<(String, String)>,
}

async fn run_async(layout: Layout, name: String) -> anyhow::Result<()> {
    let run_dir = layout.run_dir(&name);
    create_private_dir(&run_dir)?;
    // One scheduler per workflow: the lock is held for the life of the process.
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(layout.lock_file(&name))?;
    // A scheduler that just stopped may hold it for a few more milliseconds: wait a
    // little, then give up (a live scheduler keeps it forever).
    let mut lock_file = lock_file;
    let mut waited = Duration::ZERO;
    let _lock = loop {
        match nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(l) => break l,
            Err((f, e)) => {
                if waited >= Duration::from_secs(3) {
                    anyhow::bail!("another scheduler is already running {name} ({e})");
                }
                lock_file = f;
                tokio::time::sleep(Duration::from_millis(20)).await;
                waited += Duration::from_millis(20);
            }
        }
    };
    let flow = Flow::load(&layout.flow_file(&name))?;
    let mut st = WorkflowState::load_stopped(&layout.state_file(&name))
        .unwrap_or_else(|| WorkflowState::fresh(&name, &flow));
    st.name = name.clone();
    st.sync_with(&flow);
    st.status = WorkflowStatus::Running;
    st.scheduler_pid = Some(std::process::id());

    let (exit_tx, mut exit_rx) = mpsc::unbounded_channel();
    let base_env = ["HOME", "USER", "LOGNAME", "PATH", "LANG", "TZ", "SHELL"]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    let mut s = Sched {
        layout: layout.clone(),
        name: name.clone(),
        flow,
        st,
        index: HashMap::new(),
        jobs: HashMap::new(),
        subscribers: Vec::new(),
        changed: Vec::new(),
        changed_mark: Vec::new(),
        status_changed: true,
        dirty: true,
        last_write: Instant::now(),
        exit_tx,
        stalled_logged: false,
        base_env,
    };
    s.reindex();
    s.adopt_orphans();
    s.write_state();

    let sock = layout.socket(&name);
    let _ = std::fs::remove_file(&sock); // stale: we hold the lock
    let listener = UnixListener::bind(&sock)
        .with_context(|| format!("cannot listen on {}", sock.display()))?;
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600))?;
    s.log(
        "INFO",
        &format!("scheduler {} started for {name}", std::process::id()),
    );

    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<Cmd>();
    let acceptor = tokio::spawn(accept_loop(listener, cmd_tx));
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;

    loop {
        s.schedule();
        s.flush();
        if s.finished() {
            break;
        }
        tokio::select! {
            Some(cmd) = cmd_rx.recv() => s.handle(cmd),
            Some(ex) = exit_rx.recv() => s.on_exit(ex),
            _ = tick.tick() => s.on_tick(),
            _ = sigterm.recv() => {
                s.log("INFO", "SIGTERM: stopping after running jobs finish (stop --mode=clean)");
                s.set_status(WorkflowStatus::Stopping);
            }
        }
    }
    // Stop taking connections first, so nobody reaches a scheduler on its way out;
    // only then announce `stopped` (after which a new `play` may start a successor).
    acceptor.abort();
    let _ = std::fs::remove_file(&sock);
    s.set_status(WorkflowStatus::Stopped);
    s.st.scheduler_pid = None;
    s.write_state();
    s.flush();
    s.log("INFO", "scheduler stopped");
    // Give connection writers a moment to deliver the final delta.
    drop(cmd_rx);
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(())
}

async fn accept_loop(listener: UnixListener, cmd_tx: mpsc::UnboundedSender<Cmd>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, cmd_tx.clone()));
            }
            Err(e) => {
                eprintln!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One UI server connection: requests in; replies and (after subscribe) events out,
/// all through one queue fed by the scheduler loop, so a reply never overtakes the
/// delta of the change it reports.
async fn connection(stream: UnixStream, cmd_tx: mpsc::UnboundedSender<Cmd>) {
    let (rd, mut wr) = stream.into_split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Line>();
    let writer = tokio::spawn(async move {
        while let Some(line) = out_rx.recv().await {
            if wr.write_all(line.as_bytes()).await.is_err() || wr.write_all(b"\n").await.is_err() {
                break;
            }
        }
    });
    let mut rd = BufReader::new(rd);
    let mut buf = Vec::new();
    while let Ok(Some(())) = read_line(&mut rd, &mut buf).await {
        let req: SchedRequest = match serde_json::from_slice(&buf) {
            Ok(r) => r,
            Err(e) => {
                let _ = out_tx.send(line(&SchedEvent::Reply {
                    id: 0,
                    ok: false,
                    message: format!("malformed request: {e}"),
                }));
                continue;
            }
        };
        let cmd = match req {
            SchedRequest::Subscribe => Cmd::Subscribe {
                out: out_tx.clone(),
            },
            SchedRequest::Op {
                id,
                op,
                cycle,
                task,
                job,
                args,
            } => Cmd::Op {
                id,
                op,
                cycle,
                task,
                job,
                args,
                out: out_tx.clone(),
            },
            SchedRequest::Detail { id } => Cmd::Detail {
                id,
                out: out_tx.clone(),
            },
        };
        if cmd_tx.send(cmd).is_err() {
            break;
        }
    }
    drop(out_tx);
    let _ = writer.await;
}

fn line(ev: &SchedEvent) -> Line {
    Arc::from(serde_json::to_string(ev).unwrap_or_default())
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn level_rank(level: &str) -> u8 {
    match level {
        "DEBUG" => 0,
        "INFO" => 1,
        "WARNING" => 2,
        "ERROR" => 3,
        _ => 4,
    }
}

impl Sched {
    fn log(&self, level: &str, msg: &str) {
        if level_rank(level) >= level_rank(&self.st.verbosity) {
            // stderr is the scheduler log file (see `daemon::detach`).
            eprintln!("{} {level} - [{}] {msg}", now_rfc3339(), self.name);
        }
    }

    fn reindex(&mut self) {
        self.index = self
            .st
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| ((t.cycle.clone(), t.task.clone()), i))
            .collect();
        self.changed_mark = vec![false; self.st.tasks.len()];
        self.changed.clear();
    }

    fn mark(&mut self, i: usize) {
        if !self.changed_mark[i] {
            self.changed_mark[i] = true;
            self.changed.push(i);
        }
    }

    fn set_status(&mut self, s: WorkflowStatus) {
        if self.st.status != s {
            self.log(
                "INFO",
                &format!("workflow {} -> {}", self.st.status.name(), s.name()),
            );
            self.st.status = s;
            self.status_changed = true;
        }
    }

    /// Sends one delta with everything that changed since the last flush.
    fn flush(&mut self) {
        if !self.status_changed && self.changed.is_empty() {
            return;
        }
        let tasks = self
            .changed
            .drain(..)
            .map(|i| {
                self.changed_mark[i] = false;
                self.st.tasks[i].to_wire()
            })
            .collect();
        let ev = SchedEvent::Delta {
            status: self.status_changed.then_some(self.st.status),
            tasks,
        };
        self.status_changed = false;
        self.dirty = true;
        if level_rank("DEBUG") >= level_rank(&self.st.verbosity) {
            if let SchedEvent::Delta { status, tasks } = &ev {
                self.log(
                    "DEBUG",
                    &format!(
                        "delta to {} subscriber(s): status {:?}, {} task change(s)",
                        self.subscribers.len(),
                        status.map(|s| s.name()),
                        tasks.len()
                    ),
                );
            }
        }
        self.broadcast(line(&ev));
    }

    fn broadcast(&mut self, l: Line) {
        self.subscribers.retain(|s| s.send(l.clone()).is_ok());
    }

    fn write_state(&mut self) {
        match serde_json::to_vec(&self.st) {
            Ok(bytes) => {
                if let Err(e) = write_atomic(&self.layout.state_file(&self.name), &bytes) {
                    self.log("ERROR", &format!("cannot write state.json: {e}"));
                }
            }
            Err(e) => self.log("ERROR", &format!("cannot serialise state: {e}")),
        }
        self.dirty = false;
        self.last_write = Instant::now();
    }

    fn finished(&self) -> bool {
        self.st.status == WorkflowStatus::Stopping && self.jobs.is_empty()
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        let mut gone = Vec::new();
        for (&i, job) in &mut self.jobs {
            if let Some(at) = job.kill_sent {
                if now.duration_since(at) > KILL_GRACE {
                    let _ = signal_group(job.pid, nix::sys::signal::Signal::SIGKILL);
                    job.kill_sent = Some(now);
                }
            }
            if job.orphan && !pid_alive(job.pid) {
                gone.push(i);
            }
        }
        for i in gone {
            let t = &self.st.tasks[i];
            let status = std::fs::read_to_string(
                self.layout
                    .job_dir(&self.name, &t.cycle, &t.task, t.submit_num)
                    .join("job.status"),
            )
            .unwrap_or_default();
            let code = status
                .lines()
                .find_map(|l| l.strip_prefix("STEWARD_JOB_EXIT_CODE="))
                .and_then(|c| c.parse().ok());
            let ex = JobExit {
                cycle: t.cycle.clone(),
                task: t.task.clone(),
                submit: t.submit_num,
                code,
                signal: None,
            };
            self.on_exit(ex);
        }
        if self.dirty && now.duration_since(self.last_write) >= STATE_WRITE_INTERVAL {
            self.write_state();
        }
    }

    /// Jobs recorded as running by a previous scheduler: watch them by pid.
    fn adopt_orphans(&mut self) {
        for (i, t) in self.st.tasks.iter_mut().enumerate() {
            if t.status != TaskStatus::Running {
                continue;
            }
            match t.pid {
                Some(pid) if pid_alive(pid) => {
                    self.jobs.insert(
                        i,
                        Job {
                            pid,
                            submit: t.submit_num,
                            kill_sent: None,
                            kill_reason: None,
                            orphan: true,
                        },
                    );
                }
                _ => {
                    t.status = TaskStatus::Failed;
                    t.pid = None;
                    t.outputs.insert("failed".into());
                    t.note("job ended while no scheduler was running (exit status unknown)".into());
                    self.changed_mark[i] = true;
                    self.changed.push(i);
                }
            }
        }
    }

    // ---------------------------------------------------------------- scheduling

    fn cycle_idx(&self, cycle: &str) -> usize {
        self.flow.cycle_index(cycle).unwrap_or(usize::MAX)
    }

    fn prereqs_met(&self, i: usize, def: &TaskDef) -> bool {
        let t = &self.st.tasks[i];
        let ci = self.cycle_idx(&t.cycle);
        def.after.iter().all(|d| {
            if t.forced_prereqs.contains(&d.to_string()) {
                return true;
            }
            if d.offset > ci {
                return true; // before the first cycle: nothing to wait for
            }
            let up_cycle = &self.flow.cycles[ci - d.offset];
            match self.index.get(&(up_cycle.clone(), d.task.clone())) {
                Some(&j) => self.st.tasks[j].outputs.contains(&d.output),
                None => true,
            }
        })
    }

    /// Submits every waiting task that may run now.
    fn schedule(&mut self) {
        if self.st.status != WorkflowStatus::Running {
            return;
        }
        // Runahead: cycles beyond the first incomplete one + runahead wait.
        let first_incomplete = self
            .st
            .tasks
            .iter()
            .filter(|t| !matches!(t.status, TaskStatus::Succeeded | TaskStatus::Removed))
            .map(|t| self.cycle_idx(&t.cycle))
            .min();
        let Some(first_incomplete) = first_incomplete else {
            if self.jobs.is_empty() {
                self.log(
                    "INFO",
                    "workflow completed: every task succeeded or was removed",
                );
                self.set_status(WorkflowStatus::Stopping);
            }
            return;
        };
        let limit = first_incomplete.saturating_add(self.flow.runahead);
        let hold_idx = self
            .st
            .hold_point
            .as_deref()
            .map(|p| self.cycle_idx(p))
            .unwrap_or(usize::MAX);
        let mut ready = Vec::new();
        for (i, t) in self.st.tasks.iter().enumerate() {
            if t.status != TaskStatus::Waiting || t.held {
                continue;
            }
            let ci = self.cycle_idx(&t.cycle);
            if ci >= limit || ci > hold_idx {
                continue;
            }
            let Some(def) = self.flow.task(&t.task) else {
                continue;
            };
            if def.ext_trigger.is_some() && !t.ext_triggered {
                continue;
            }
            if self.prereqs_met(i, def) {
                ready.push(i);
            }
        }
        for i in ready {
            let _ = self.submit(i, None);
        }
        let stalled = self.jobs.is_empty()
            && self
                .st
                .tasks
                .iter()
                .any(|t| matches!(t.status, TaskStatus::Failed | TaskStatus::SubmitFailed));
        if stalled != self.st.stalled {
            self.st.stalled = stalled;
            self.dirty = true;
            if stalled && !self.stalled_logged {
                self.log(
                    "WARNING",
                    "workflow stalled: failed tasks block the rest (trigger, set or remove them)",
                );
                self.stalled_logged = true;
            }
        }
    }

    /// Starts a job for task instance `i`: `/bin/sh -c <script>` in its own process
    /// group, env = base + STEWARD_* + flow + task + broadcasts + `overrides`.
    fn submit(
        &mut self,
        i: usize,
        overrides: Option<&BTreeMap<String, String>>,
    ) -> Result<u32, String> {
        let (cycle, task) = {
            let t = &self.st.tasks[i];
            (t.cycle.clone(), t.task.clone())
        };
        let def = self
            .flow
            .task(&task)
            .cloned()
            .ok_or_else(|| format!("task {task} is no longer defined in flow.toml"))?;
        let submit = self.st.tasks[i].submit_num + 1;
        let job_dir = self.layout.job_dir(&self.name, &cycle, &task, submit);
        let work_dir = self.layout.work_dir(&self.name, &cycle, &task);
        let mut env: BTreeMap<String, String> = self.base_env.iter().cloned().collect();
        env.insert("STEWARD_WORKFLOW".into(), self.name.clone());
        env.insert(
            "STEWARD_WORKFLOW_RUN_DIR".into(),
            self.layout.run_dir(&self.name).display().to_string(),
        );
        env.insert("STEWARD_CYCLE".into(), cycle.clone());
        env.insert("STEWARD_TASK".into(), task.clone());
        env.insert("STEWARD_JOB".into(), crate::paths::job_dir_name(submit));
        env.insert("STEWARD_JOB_DIR".into(), job_dir.display().to_string());
        env.insert("STEWARD_WORK_DIR".into(), work_dir.display().to_string());
        env.extend(self.flow.env.clone());
        env.extend(def.env.clone());
        let mut bcs: Vec<&Broadcast> = self
            .st
            .broadcasts
            .iter()
            .filter(|b| b.applies(&cycle, &task))
            .collect();
        bcs.sort_by_key(|b| b.specificity());
        for b in bcs {
            env.extend(b.env.clone());
        }
        if let Some(o) = overrides {
            env.extend(o.clone());
        }
        let spawned = (|| -> std::io::Result<tokio::process::Child> {
            create_private_dir(&job_dir)?;
            create_private_dir(&work_dir)?;
            let out = std::fs::File::create(job_dir.join("job.out"))?;
            let err = std::fs::File::create(job_dir.join("job.err"))?;
            let mut cmd = std::process::Command::new("/bin/sh");
            cmd.arg("-c")
                .arg(&def.script)
                .env_clear()
                .envs(&env)
                .current_dir(&work_dir)
                .stdin(std::process::Stdio::null())
                .stdout(out)
                .stderr(err);
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            tokio::process::Command::from(cmd).spawn()
        })();
        let t = &mut self.st.tasks[i];
        t.submit_num = submit;
        t.exit_code = None;
        t.held = false;
        match spawned {
            Ok(mut child) => {
                let pid = child.id().unwrap_or(0);
                t.status = TaskStatus::Running;
                t.pid = Some(pid);
                t.outputs
                    .retain(|o| !BUILTIN_OUTPUTS.contains(&o.as_str()) || o == "started");
                t.outputs.remove("succeeded");
                t.outputs.remove("failed");
                t.outputs.insert("started".into());
                let _ = std::fs::write(
                    job_dir.join("job.status"),
                    format!(
                        "STEWARD_JOB_PID={pid}\nSTEWARD_JOB_INIT_TIME={}\n",
                        now_rfc3339()
                    ),
                );
                self.jobs.insert(
                    i,
                    Job {
                        pid,
                        submit,
                        kill_sent: None,
                        kill_reason: None,
                        orphan: false,
                    },
                );
                let tx = self.exit_tx.clone();
                let (c2, t2) = (cycle.clone(), task.clone());
                tokio::spawn(async move {
                    let status = child.wait().await;
                    use std::os::unix::process::ExitStatusExt;
                    let (code, signal) = match status {
                        Ok(s) => (s.code(), s.signal()),
                        Err(_) => (None, None),
                    };
                    let _ = tx.send(JobExit {
                        cycle: c2,
                        task: t2,
                        submit,
                        code,
                        signal,
                    });
                });
                self.mark(i);
                self.log(
                    "INFO",
                    &format!("[{cycle}/{task}/{submit:02}] submitted, pid {pid}"),
                );
                Ok(submit)
            }
            Err(e) => {
                t.status = TaskStatus::SubmitFailed;
                t.note(format!("job {submit:02} submission failed: {e}"));
                self.mark(i);
                self.log(
                    "ERROR",
                    &format!("[{cycle}/{task}/{submit:02}] submission failed: {e}"),
                );
                Err(format!("{cycle}/{task}: job submission failed: {e}"))
            }
        }
    }

    fn on_exit(&mut self, ex: JobExit) {
        let Some(&i) = self.index.get(&(ex.cycle.clone(), ex.task.clone())) else {
            return;
        };
        if self.jobs.get(&i).map(|j| j.submit) != Some(ex.submit) {
            return;
        }
        let job = self.jobs.remove(&i).expect("checked above");
        let job_dir = self
            .layout
            .job_dir(&self.name, &ex.cycle, &ex.task, ex.submit);
        let t = &mut self.st.tasks[i];
        t.pid = None;
        t.exit_code = ex.code;
        let ok = ex.code == Some(0) && job.kill_reason.is_none();
        let how = match (ex.code, ex.signal) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(s)) => format!("signal {s}"),
            _ => "unknown exit".to_string(),
        };
        if t.status == TaskStatus::Removed {
            // stays removed
        } else if ok {
            t.status = TaskStatus::Succeeded;
            t.outputs.insert("succeeded".into());
        } else {
            t.status = TaskStatus::Failed;
            t.outputs.insert("failed".into());
            t.note(match &job.kill_reason {
                Some(r) => format!("job {:02} {r} ({how})", ex.submit),
                None => format!("job {:02} failed ({how})", ex.submit),
            });
        }
        let verdict = if job.kill_reason.is_some() {
            "KILLED"
        } else if ok {
            "SUCCEEDED"
        } else {
            "FAILED"
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .open(job_dir.join("job.status"))
        {
            let _ = write!(
                f,
                "STEWARD_JOB_EXIT={verdict}\nSTEWARD_JOB_EXIT_CODE={}\nSTEWARD_JOB_EXIT_TIME={}\n",
                ex.code.map(|c| c.to_string()).unwrap_or_default(),
                now_rfc3339()
            );
        }
        self.mark(i);
        self.log(
            "INFO",
            &format!(
                "[{}/{}/{:02}] {verdict} ({how})",
                ex.cycle, ex.task, ex.submit
            ),
        );
    }

    fn kill_job(&mut self, i: usize, reason: &str) -> Result<u32, String> {
        let job = self
            .jobs
            .get_mut(&i)
            .ok_or_else(|| "no active job".to_string())?;
        job.kill_reason = Some(reason.to_string());
        job.kill_sent = Some(Instant::now());
        let pid = job.pid;
        signal_group(pid, nix::sys::signal::Signal::SIGTERM)
            .map_err(|e| format!("cannot signal job process group {pid}: {e}"))?;
        Ok(pid)
    }

    // ---------------------------------------------------------------- commands

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Subscribe { out } => {
                let _ = out.send(line(&SchedEvent::State {
                    state: self.st.clone(),
                }));
                self.subscribers.push(out);
            }
            Cmd::Detail { id, out } => {
                let _ = out.send(line(&SchedEvent::Detail {
                    id,
                    state: Box::new(self.st.clone()),
                }));
            }
            Cmd::Op {
                id,
                op,
                cycle,
                task,
                job,
                args,
                out,
            } => {
                let at = Target {
                    op,
                    cycle: cycle.as_deref(),
                    task: task.as_deref(),
                    job,
                };
                let result = self.op(at, &args);
                let (ok, message) = match result {
                    Ok(m) => (true, m),
                    Err(m) => (false, m),
                };
                self.log(
                    if ok { "INFO" } else { "WARNING" },
                    &format!("command {op} {}: {message}", target_str(&cycle, &task, job)),
                );
                // The change is visible (delta sent) before the reply.
                self.schedule();
                self.flush();
                if ok {
                    self.write_state();
                }
                let _ = out.send(line(&SchedEvent::Reply { id, ok, message }));
            }
        }
    }

    /// Task instances a target names: a whole cycle, or one task (and job).
    fn select(&self, at: Target<'_>) -> Result<Vec<usize>, String> {
        let Target {
            op,
            cycle,
            task,
            job,
        } = at;
        let Some(cycle) = cycle else {
            return Err(format!(
                "{op} needs a task id (workflow//cycle/task, or workflow//cycle for a whole cycle), not just the workflow"
            ));
        };
        if self.flow.cycle_index(cycle).is_none() {
            return Err(format!(
                "cycle point {cycle:?} is not one of {}'s cycles ({})",
                self.name,
                preview(&self.flow.cycles)
            ));
        }
        match task {
            None => Ok(self
                .st
                .tasks
                .iter()
                .enumerate()
                .filter(|(_, t)| t.cycle == cycle)
                .map(|(i, _)| i)
                .collect()),
            Some(task) => {
                let &i = self
                    .index
                    .get(&(cycle.to_string(), task.to_string()))
                    .ok_or_else(|| {
                        format!("{} has no task {task:?} (tasks: {})", self.name, {
                            let names: Vec<String> =
                                self.flow.tasks.iter().map(|t| t.name.clone()).collect();
                            preview(&names)
                        })
                    })?;
                if let Some(j) = job {
                    let latest = self.st.tasks[i].submit_num;
                    if j == 0 || j > latest {
                        return Err(if latest == 0 {
                            format!("{cycle}/{task} has no job {j:02}: it has never been submitted")
                        } else {
                            format!("{cycle}/{task} has no job {j:02}: the latest is {latest:02}")
                        });
                    }
                    if j != latest && matches!(op, Operation::Kill | Operation::Poll) {
                        return Err(format!(
                            "{cycle}/{task}/{j:02} is not the latest job ({latest:02}); only the latest job can be active"
                        ));
                    }
                }
                Ok(vec![i])
            }
        }
    }

    fn id_of(&self, i: usize) -> String {
        let t = &self.st.tasks[i];
        format!("{}/{}", t.cycle, t.task)
    }

    /// Runs one operation on the run state; the `Ok` or `Err` text is the reply's
    /// message. One function per operation (or pair of operations) below.
    fn op(&mut self, at: Target<'_>, args: &Args) -> Result<String, String> {
        use Operation as O;
        let Target {
            op, cycle, task, ..
        } = at;
        match op {
            O::Play | O::Resume => self.op_resume(op),
            O::Pause => self.op_pause(),
            O::Stop => self.op_stop(args),
            O::Hold => self.op_hold(at),
            O::Release => self.op_release(at),
            O::Trigger => self.op_trigger(at, args),
            O::Kill => self.op_kill(at),
            O::Poll => self.op_poll(at),
            O::Set => self.op_set(at, args),
            O::Remove => self.op_remove(at),
            O::Message => self.op_message(at, args),
            O::Broadcast => self.op_broadcast(cycle, task, args),
            O::Reload => self.op_reload(),
            O::SetHoldPoint => self.op_set_hold_point(cycle, args),
            O::ReleaseHoldPoint => self.op_release_hold_point(),
            O::SetVerbosity => self.op_set_verbosity(args),
            O::SetGraphWindowExtent => self.op_set_graph_window_extent(args),
            O::ExtTrigger => self.op_ext_trigger(cycle, args),
            O::Read | O::Scan | O::Clean => Err(format!(
                "{op} is handled by the UI server, not the scheduler"
            )),
        }
    }

    /// `play` (of a running workflow) and `resume`: a paused workflow submits jobs again.
    fn op_resume(&mut self, op: Operation) -> Result<String, String> {
        let name = self.name.clone();
        match self.st.status {
            WorkflowStatus::Paused => {
                self.set_status(WorkflowStatus::Running);
                Ok(format!("{name} resumed: submitting tasks again"))
            }
            WorkflowStatus::Running if op == Operation::Play => Err(format!(
                "{name} is already running (scheduler pid {})",
                std::process::id()
            )),
            WorkflowStatus::Running => Err(format!("{name} is not paused")),
            _ => Err(format!(
                "{name} is stopping; it cannot be resumed (play it again once stopped)"
            )),
        }
    }

    /// `pause`: no new jobs are submitted; running jobs continue.
    fn op_pause(&mut self) -> Result<String, String> {
        let name = self.name.clone();
        match self.st.status {
            WorkflowStatus::Running => {
                self.set_status(WorkflowStatus::Paused);
                Ok(format!(
                    "{name} paused: no new jobs will be submitted ({} running job(s) continue)",
                    self.jobs.len()
                ))
            }
            WorkflowStatus::Paused => Err(format!("{name} is already paused")),
            _ => Err(format!("{name} is stopping; pause does not apply")),
        }
    }

    /// `stop --mode=clean|now|kill`: clean waits for running jobs, the others kill them.
    fn op_stop(&mut self, args: &Args) -> Result<String, String> {
        let name = self.name.clone();
        let stopping = self.st.status == WorkflowStatus::Stopping;
        let mode = arg_str(args, "mode")?.unwrap_or("clean");
        match mode {
            "clean" => {
                if stopping {
                    return Err(format!("{name} is already stopping"));
                }
                self.set_status(WorkflowStatus::Stopping);
                Ok(format!(
                    "{name} stopping: waiting for {} running job(s) to finish",
                    self.jobs.len()
                ))
            }
            "now" | "kill" => {
                self.set_status(WorkflowStatus::Stopping);
                let active: Vec<usize> = self.jobs.keys().copied().collect();
                let reason = format!("killed by stop --mode={mode}");
                let mut n = 0;
                for i in active {
                    if self.kill_job(i, &reason).is_ok() {
                        n += 1;
                    }
                }
                Ok(format!("{name} stopping: killed {n} running job(s)"))
            }
            other => Err(format!(
                "unknown stop mode {other:?}: expected \"clean\" (wait for running jobs), \"now\" or \"kill\" (kill running jobs)"
            )),
        }
    }

    /// `hold`: waiting tasks of the target are not submitted until released.
    fn op_hold(&mut self, at: Target<'_>) -> Result<String, String> {
        let targets = self.select(at)?;
        let mut held = Vec::new();
        let mut skipped = Vec::new();
        for i in targets {
            let t = &mut self.st.tasks[i];
            if t.status == TaskStatus::Waiting && !t.held {
                t.held = true;
                held.push(i);
            } else {
                skipped.push(format!("{}/{} is {}", t.cycle, t.task, t.wire_state()));
            }
        }
        for &i in &held {
            self.mark(i);
        }
        if held.is_empty() {
            return Err(format!(
                "nothing to hold: {} (hold applies to waiting tasks)",
                skipped.join(", ")
            ));
        }
        Ok(format!("held {}", self.ids(&held)))
    }

    /// `release`: undoes `hold` on the target's held tasks.
    fn op_release(&mut self, at: Target<'_>) -> Result<String, String> {
        let targets = self.select(at)?;
        let released: Vec<usize> = targets
            .into_iter()
            .filter(|&i| self.st.tasks[i].held)
            .collect();
        if released.is_empty() {
            return Err(format!(
                "nothing to release: {} is not held",
                target_str(
                    &at.cycle.map(str::to_string),
                    &at.task.map(str::to_string),
                    None
                )
            ));
        }
        for &i in &released {
            self.st.tasks[i].held = false;
            self.mark(i);
        }
        Ok(format!("released {}", self.ids(&released)))
    }

    /// `trigger`: submits the target's tasks now, optionally with an edited environment.
    fn op_trigger(&mut self, at: Target<'_>, args: &Args) -> Result<String, String> {
        let name = self.name.clone();
        let stopping = self.st.status == WorkflowStatus::Stopping;
        if stopping {
            return Err(format!("{name} is stopping; trigger does not apply"));
        }
        let env = arg_env(args, "env")?;
        let targets = self.select(at)?;
        let mut done = Vec::new();
        let mut errors = Vec::new();
        for i in targets {
            if self.jobs.contains_key(&i) {
                errors.push(format!(
                    "{} is already running (job {:02}; kill it first)",
                    self.id_of(i),
                    self.st.tasks[i].submit_num
                ));
                continue;
            }
            match self.submit(i, env.as_ref()) {
                Ok(n) => done.push(format!("{}/{n:02}", self.id_of(i))),
                Err(e) => errors.push(e),
            }
        }
        if done.is_empty() {
            return Err(errors.join("; "));
        }
        let mut msg = format!("triggered {}", done.join(", "));
        if let Some(env) = &env {
            msg.push_str(&format!(
                " with edited environment ({})",
                env.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        if !errors.is_empty() {
            msg.push_str(&format!("; not triggered: {}", errors.join("; ")));
        }
        Ok(msg)
    }

    /// `kill`: kills the target's running jobs (each job's whole process group).
    fn op_kill(&mut self, at: Target<'_>) -> Result<String, String> {
        let targets = self.select(at)?;
        let mut killed = Vec::new();
        let mut skipped = Vec::new();
        for i in targets {
            if self.jobs.contains_key(&i) {
                let pid = self.kill_job(i, "killed")?;
                killed.push(format!(
                    "{}/{:02} (pid {pid})",
                    self.id_of(i),
                    self.st.tasks[i].submit_num
                ));
            } else {
                skipped.push(format!(
                    "{} is {}",
                    self.id_of(i),
                    self.st.tasks[i].wire_state()
                ));
            }
        }
        if killed.is_empty() {
            return Err(format!(
                "nothing to kill: {} (kill applies to running jobs)",
                skipped.join(", ")
            ));
        }
        Ok(format!("killed {}", killed.join(", ")))
    }

    /// `poll`: reports each target job from its process or its `job.status`; a job whose
    /// process is gone is settled on the next tick.
    fn op_poll(&mut self, at: Target<'_>) -> Result<String, String> {
        let name = self.name.clone();
        let targets: Vec<usize> = match at.cycle {
            None => {
                let mut v: Vec<usize> = self.jobs.keys().copied().collect();
                v.sort();
                if v.is_empty() {
                    return Err(format!("nothing to poll: {name} has no active jobs"));
                }
                v
            }
            Some(_) => self.select(at)?,
        };
        let mut lines = Vec::new();
        let mut dead = Vec::new();
        for i in targets {
            let t = &self.st.tasks[i];
            let id = self.id_of(i);
            if t.submit_num == 0 {
                lines.push(format!("{id}: never submitted"));
                continue;
            }
            if let Some(j) = self.jobs.get(&i) {
                if pid_alive(j.pid) {
                    lines.push(format!(
                        "{id}/{:02}: running (pid {}, process alive)",
                        t.submit_num, j.pid
                    ));
                } else {
                    lines.push(format!(
                        "{id}/{:02}: process {} has gone",
                        t.submit_num, j.pid
                    ));
                    dead.push(i);
                }
            } else {
                let status = std::fs::read_to_string(
                    self.layout
                        .job_dir(&name, &t.cycle, &t.task, t.submit_num)
                        .join("job.status"),
                )
                .unwrap_or_default();
                let exit = status
                    .lines()
                    .find_map(|l| l.strip_prefix("STEWARD_JOB_EXIT="))
                    .unwrap_or("no exit recorded");
                lines.push(format!(
                    "{id}/{:02}: {} (job.status: {exit})",
                    t.submit_num,
                    t.wire_state()
                ));
            }
        }
        if lines.iter().all(|l| l.ends_with("never submitted")) {
            return Err(format!("nothing to poll: {}", lines.join("; ")));
        }
        for i in dead {
            if let Some(j) = self.jobs.get_mut(&i) {
                j.orphan = true; // the next tick settles it from job.status
            }
        }
        Ok(lines.join("; "))
    }

    /// `set`: completes outputs and/or forces prerequisites on the target tasks.
    fn op_set(&mut self, at: Target<'_>, args: &Args) -> Result<String, String> {
        let targets = self.select(at)?;
        let outputs = arg_str_list(args, "outputs")?;
        let prereqs = arg_str_list(args, "prerequisites")?;
        let outputs = match (&outputs, &prereqs) {
            (None, None) => vec!["succeeded".to_string()],
            (Some(o), _) => o.clone(),
            (None, Some(_)) => vec![],
        };
        self.check_set(&targets, &outputs, prereqs.as_deref())?;
        let mut msgs = Vec::new();
        for &i in &targets {
            let active = self.jobs.contains_key(&i);
            let t = &mut self.st.tasks[i];
            for o in &outputs {
                t.outputs.insert(o.clone());
                if !active {
                    match o.as_str() {
                        "succeeded" => {
                            t.status = TaskStatus::Succeeded;
                            t.outputs.remove("failed");
                            t.held = false;
                        }
                        "failed" => {
                            t.status = TaskStatus::Failed;
                            t.outputs.remove("succeeded");
                            t.held = false;
                        }
                        _ => {}
                    }
                }
            }
            if let Some(ps) = &prereqs {
                for p in ps {
                    let norm = norm_prereq(p);
                    t.forced_prereqs.insert(norm);
                }
            }
            msgs.push(format!("{}/{}", t.cycle, t.task));
            self.mark(i);
        }
        let mut what = Vec::new();
        if !outputs.is_empty() {
            what.push(format!("outputs {}", outputs.join(", ")));
        }
        if let Some(ps) = &prereqs {
            what.push(format!("prerequisites {}", ps.join(", ")));
        }
        Ok(format!("set {} on {}", what.join(" and "), msgs.join(", ")))
    }

    /// `set` changes nothing unless every output and prerequisite it names exists
    /// on every target task.
    fn check_set(
        &self,
        targets: &[usize],
        outputs: &[String],
        prereqs: Option<&[String]>,
    ) -> Result<(), String> {
        for &i in targets {
            let tname = self.st.tasks[i].task.clone();
            let def = self.flow.task(&tname).cloned();
            for o in outputs {
                let known = BUILTIN_OUTPUTS.contains(&o.as_str())
                    || def.as_ref().is_some_and(|d| d.outputs.contains(o));
                if !known {
                    return Err(format!(
                        "{} has no output {o:?} (outputs: started, succeeded, failed{})",
                        self.id_of(i),
                        def.as_ref()
                            .map(|d| d
                                .outputs
                                .iter()
                                .map(|x| format!(", {x}"))
                                .collect::<String>())
                            .unwrap_or_default()
                    ));
                }
            }
            if let Some(ps) = prereqs {
                let valid: Vec<String> = def
                    .as_ref()
                    .map(|d| d.after.iter().map(|x| x.to_string()).collect())
                    .unwrap_or_default();
                for p in ps {
                    let norm = if p.contains(':') {
                        p.clone()
                    } else {
                        format!("{p}:succeeded")
                    };
                    if !valid.contains(&norm) {
                        return Err(format!(
                            "{} has no prerequisite {p:?} (prerequisites: {})",
                            self.id_of(i),
                            if valid.is_empty() {
                                "none".to_string()
                            } else {
                                valid.join(", ")
                            }
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// `remove`: takes the target's tasks out of the run, killing their jobs.
    fn op_remove(&mut self, at: Target<'_>) -> Result<String, String> {
        let targets = self.select(at)?;
        let mut removed = Vec::new();
        for i in targets {
            if self.st.tasks[i].status == TaskStatus::Removed {
                continue;
            }
            let mut note = String::new();
            if self.jobs.contains_key(&i) {
                let pid = self.kill_job(i, "killed because the task was removed")?;
                note = format!(" (killed job pid {pid})");
            }
            let t = &mut self.st.tasks[i];
            t.status = TaskStatus::Removed;
            t.held = false;
            removed.push(format!("{}/{}{note}", t.cycle, t.task));
            self.mark(i);
        }
        if removed.is_empty() {
            return Err("nothing to remove: already removed".to_string());
        }
        Ok(format!("removed {}", removed.join(", ")))
    }

    /// `message`: appends a task message to one job's activity log; a message naming a
    /// custom output completes it.
    fn op_message(&mut self, at: Target<'_>, args: &Args) -> Result<String, String> {
        let name = self.name.clone();
        let targets = self.select(at)?;
        let &[i] = targets.as_slice() else {
            return Err("message needs one task (workflow//cycle/task[/job])".into());
        };
        let text = arg_str(args, "message")?
            .filter(|m| !m.trim().is_empty())
            .ok_or("message needs args.message (the task message text)")?
            .to_string();
        if text.len() > 4096 || text.contains('\n') {
            return Err("args.message must be one line of at most 4096 bytes".into());
        }
        let severity = arg_str(args, "severity")?
            .unwrap_or("INFO")
            .to_ascii_uppercase();
        if !["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "CUSTOM"].contains(&severity.as_str())
        {
            return Err(format!(
                "unknown severity {severity:?}: expected DEBUG, INFO, WARNING, ERROR, CRITICAL or CUSTOM"
            ));
        }
        let t = &self.st.tasks[i];
        let submit = at.job.unwrap_or(t.submit_num);
        if submit == 0 {
            return Err(format!(
                "{}: no job has been submitted, so there is no job log to receive a message",
                self.id_of(i)
            ));
        }
        let dir = self.layout.job_dir(&name, &t.cycle, &t.task, submit);
        let entry = format!("{} {severity} - {text}", now_rfc3339());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(dir.join("job-activity.log"))
            .map_err(|e| format!("cannot append to the job activity log: {e}"))?;
        writeln!(f, "{entry}").map_err(|e| format!("cannot write the job activity log: {e}"))?;
        let def = self.flow.task(&t.task).cloned();
        let t = &mut self.st.tasks[i];
        t.note(format!("{severity}: {text}"));
        let mut msg = format!(
            "message recorded for {}/{}/{submit:02} (job-activity.log)",
            t.cycle, t.task
        );
        if def.is_some_and(|d| d.outputs.contains(&text)) && t.outputs.insert(text.clone()) {
            msg.push_str(&format!("; output {text:?} completed"));
        }
        self.mark(i);
        Ok(msg)
    }

    /// `broadcast`: sets (or with `clear`, removes) environment for jobs submitted from
    /// now on in a scope.
    fn op_broadcast(
        &mut self,
        cycle: Option<&str>,
        task: Option<&str>,
        args: &Args,
    ) -> Result<String, String> {
        let name = self.name.clone();
        if task.is_some() && cycle.is_none() {
            return Err("broadcast scope: a task needs a cycle".into());
        }
        if let Some(c) = cycle {
            if self.flow.cycle_index(c).is_none() {
                return Err(format!("cycle point {c:?} is not one of {name}'s cycles"));
            }
        }
        if let Some(t) = task {
            if self.flow.task(t).is_none() {
                return Err(format!("{name} has no task {t:?}"));
            }
        }
        let scope = match (cycle, task) {
            (None, _) => "all cycles and tasks".to_string(),
            (Some(c), None) => format!("cycle {c}"),
            (Some(c), Some(t)) => format!("{c}/{t}"),
        };
        let clear = args.get("clear").and_then(Value::as_bool).unwrap_or(false);
        let (c, t) = (cycle.map(str::to_string), task.map(str::to_string));
        if clear {
            let before = self.st.broadcasts.len();
            self.st
                .broadcasts
                .retain(|b| !(b.cycle == c && b.task == t));
            if before == self.st.broadcasts.len() {
                return Err(format!("no broadcast to clear for {scope}"));
            }
            self.dirty = true;
            return Ok(format!("cleared broadcasts for {scope}"));
        }
        let env = arg_env(args, "env")?
            .filter(|e| !e.is_empty())
            .ok_or("broadcast needs args.env = {NAME = \"value\", ...} (or args.clear = true)")?;
        let keys: Vec<String> = env.keys().cloned().collect();
        match self
            .st
            .broadcasts
            .iter_mut()
            .find(|b| b.cycle == c && b.task == t)
        {
            Some(b) => b.env.extend(env),
            None => self.st.broadcasts.push(Broadcast {
                cycle: c,
                task: t,
                env,
            }),
        }
        self.dirty = true;
        Ok(format!(
            "broadcast {} to {scope}: applies to jobs submitted from now on",
            keys.join(", ")
        ))
    }

    /// `reload`: rereads `flow.toml`, keeping running jobs attached to their (cycle, task).
    fn op_reload(&mut self) -> Result<String, String> {
        let name = self.name.clone();
        let flow = Flow::load(&self.layout.flow_file(&name))
            .map_err(|e| format!("reload failed, keeping the running definition: {e}"))?;
        let before = self.st.tasks.len();
        self.flow = flow;
        self.st.sync_with(&self.flow);
        // Indexes shift: active jobs are re-keyed by (cycle, task).
        let old_jobs: Vec<Job> = self.jobs.drain().map(|(_, j)| j).collect();
        let old_jobs: Vec<(String, String, Job)> = old_jobs
            .into_iter()
            .filter_map(|j| {
                self.st
                    .tasks
                    .iter()
                    .find(|t| t.pid == Some(j.pid) && t.status == TaskStatus::Running)
                    .map(|t| (t.cycle.clone(), t.task.clone(), j))
            })
            .collect();
        self.reindex();
        for (c, t, j) in old_jobs {
            if let Some(&i) = self.index.get(&(c, t)) {
                self.jobs.insert(i, j);
            }
        }
        let state = self.st.clone();
        self.broadcast(line(&SchedEvent::State { state }));
        Ok(format!(
            "reloaded flow.toml: {} task instance(s) (was {before})",
            self.st.tasks.len()
        ))
    }

    /// `set_hold_point`: no task in a later cycle is submitted.
    fn op_set_hold_point(&mut self, cycle: Option<&str>, args: &Args) -> Result<String, String> {
        let name = self.name.clone();
        let point = arg_str(args, "point")?
            .or(cycle)
            .ok_or("set_hold_point needs args.point (a cycle point)")?
            .to_string();
        if self.flow.cycle_index(&point).is_none() {
            return Err(format!(
                "hold point {point:?} is not one of {name}'s cycles ({})",
                preview(&self.flow.cycles)
            ));
        }
        self.st.hold_point = Some(point.clone());
        self.dirty = true;
        Ok(format!(
            "hold point set to {point}: tasks in later cycles will not be submitted"
        ))
    }

    /// `set_verbosity`: the scheduler log level.
    fn op_set_verbosity(&mut self, args: &Args) -> Result<String, String> {
        let level = arg_str(args, "level")?
            .ok_or("set_verbosity needs args.level (DEBUG, INFO, WARNING, ERROR or CRITICAL)")?
            .to_ascii_uppercase();
        if !["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"].contains(&level.as_str()) {
            return Err(format!(
                "unknown level {level:?}: expected DEBUG, INFO, WARNING, ERROR or CRITICAL"
            ));
        }
        let old = std::mem::replace(&mut self.st.verbosity, level.clone());
        self.dirty = true;
        Ok(format!("scheduler log verbosity {old} -> {level}"))
    }

    /// `set_graph_window_extent`: how far the graph view reaches (0..=100).
    fn op_set_graph_window_extent(&mut self, args: &Args) -> Result<String, String> {
        let n = args
            .get("extent")
            .and_then(Value::as_u64)
            .ok_or("set_graph_window_extent needs args.extent (an integer 0..=100)")?;
        if n > 100 {
            return Err(format!("extent {n} is too large (at most 100)"));
        }
        let old = self.st.graph_window_extent;
        self.st.graph_window_extent = n as u32;
        self.dirty = true;
        Ok(format!("graph window extent {old} -> {n}"))
    }

    /// `ext_trigger`: satisfies an external trigger for the tasks waiting for that message.
    fn op_ext_trigger(&mut self, cycle: Option<&str>, args: &Args) -> Result<String, String> {
        let name = self.name.clone();
        let msg = arg_str(args, "message")?
            .filter(|m| !m.is_empty())
            .ok_or("ext_trigger needs args.message (the trigger message a task waits for)")?
            .to_string();
        let cyc = cycle.map(str::to_string);
        let mut hit = Vec::new();
        for i in 0..self.st.tasks.len() {
            let t = &self.st.tasks[i];
            if cyc.as_ref().is_some_and(|c| *c != t.cycle) || t.ext_triggered {
                continue;
            }
            if self
                .flow
                .task(&t.task)
                .is_some_and(|d| d.ext_trigger.as_deref() == Some(msg.as_str()))
            {
                self.st.tasks[i].ext_triggered = true;
                hit.push(i);
                self.mark(i);
            }
        }
        if hit.is_empty() {
            return Err(format!(
                "no task in {name}{} is waiting for external trigger {msg:?}",
                cyc.map(|c| format!(" cycle {c}")).unwrap_or_default()
            ));
        }
        self.st
            .ext_triggers
            .push((msg.clone(), cycle.map(str::to_string)));
        Ok(format!(
            "external trigger {msg:?} satisfied for {}",
            self.ids(&hit)
        ))
    }

    /// `release_hold_point`: later cycles are submitted again.
    fn op_release_hold_point(&mut self) -> Result<String, String> {
        let name = self.name.clone();
        match self.st.hold_point.take() {
            Some(p) => {
                self.dirty = true;
                Ok(format!("hold point {p} released"))
            }
            None => Err(format!(
                "{name} has no hold point to release (set one with set_hold_point)"
            )),
        }
    }

    fn ids(&self, v: &[usize]) -> String {
        let ids: Vec<String> = v.iter().map(|&i| self.id_of(i)).collect();
        preview(&ids)
    }
}

/// A prerequisite as `task:output` (`task` alone means `task:succeeded`).
fn norm_prereq(p: &str) -> String {
    if p.contains(':') {
        p.to_string()
    } else {
        format!("{p}:succeeded")
    }
}

fn preview(items: &[String]) -> String {
    if items.len() <= 8 {
        items.join(", ")
    } else {
        format!("{}, ... ({} in all)", items[..8].join(", "), items.len())
    }
}

fn target_str(cycle: &Option<String>, task: &Option<String>, job: Option<u32>) -> String {
    let mut s = String::new();
    if let Some(c) = cycle {
        s.push_str(c);
        if let Some(t) = task {
            s.push('/');
            s.push_str(t);
            if let Some(j) = job {
                s.push_str(&format!("/{j:02}"));
            }
        }
    } else {
        s.push_str("(workflow)");
    }
    s
}

fn arg_str<'a>(args: &'a Args, key: &str) -> Result<Option<&'a str>, String> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("args.{key} must be a string, not {other}")),
    }
}

fn arg_str_list(args: &Args, key: &str) -> Result<Option<Vec<String>>, String> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("args.{key} must be a list of strings"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(format!("args.{key} must be a non-empty list of strings")),
    }
}

/// `args.<key>` as environment settings: `{NAME: "value"}` (numbers/bools stringified).
pub fn arg_env(args: &Args, key: &str) -> Result<Option<BTreeMap<String, String>>, String> {
    let obj = match args.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(format!("args.{key} must be an object of NAME = \"value\"")),
    };
    let mut env = BTreeMap::new();
    for (k, v) in obj {
        crate::flow::check_env_name(k).map_err(|e| format!("args.{key}: {e}"))?;
        let v = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return Err(format!("args.{key}.{k} must be a string")),
        };
        if v.contains('\0') {
            return Err(format!("args.{key}.{k} contains a NUL byte"));
        }
        env.insert(k.clone(), v);
    }
    Ok(Some(env))
}

/// Signals a job's whole process group (jobs are group leaders: `process_group(0)`).
fn signal_group(pid: u32, sig: nix::sys::signal::Signal) -> nix::Result<()> {
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), sig)
}

/// True while `pid` exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_err() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(true),
        Err(_) => true,
    }
}
