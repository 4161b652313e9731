//! Cylc's 22 operations, their elevation class, and a compact set type.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! operations {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// One of Cylc UI Server's 22 operations: `read` plus 21 mutations.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Operation { $($variant),* }

        impl Operation {
            /// Every operation, in alphabetical order of its name.
            pub const ALL: [Operation; 22] = [$(Operation::$variant),*];

            pub fn name(self) -> &'static str {
                match self { $(Operation::$variant => $name),* }
            }
        }

        impl FromStr for Operation {
            type Err = UnknownOperation;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(Operation::$variant),)*
                    _ => Err(UnknownOperation(s.to_string())),
                }
            }
        }
    };
}

operations! {
    Broadcast => "broadcast",
    Clean => "clean",
    ExtTrigger => "ext_trigger",
    Hold => "hold",
    Kill => "kill",
    Message => "message",
    Pause => "pause",
    Play => "play",
    Poll => "poll",
    Read => "read",
    Release => "release",
    ReleaseHoldPoint => "release_hold_point",
    Reload => "reload",
    Remove => "remove",
    Resume => "resume",
    Scan => "scan",
    Set => "set",
    SetGraphWindowExtent => "set_graph_window_extent",
    SetHoldPoint => "set_hold_point",
    SetVerbosity => "set_verbosity",
    Stop => "stop",
    Trigger => "trigger",
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown operation {0:?}")]
pub struct UnknownOperation(pub String);

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How much privilege an operation needs: the elevation class a session must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpClass {
    Read,
    Execute,
    Write,
}

impl OpClass {
    pub fn name(self) -> &'static str {
        match self {
            OpClass::Read => "read",
            OpClass::Execute => "execute",
            OpClass::Write => "write",
        }
    }

    /// Operations a session holding this class may perform (before policy).
    /// Classes nest for sessions: write ⊇ execute ⊇ read, because a person who
    /// raised to write has proved the same identity as one who raised to execute.
    pub fn session_ops(self) -> OpSet {
        match self {
            OpClass::Read => OpSet::READ_LEVEL,
            OpClass::Execute => OpSet::READ_LEVEL.union(OpSet::CONTROL_LEVEL),
            OpClass::Write => OpSet::ALL,
        }
    }
}

impl FromStr for OpClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(OpClass::Read),
            "execute" => Ok(OpClass::Execute),
            "write" => Ok(OpClass::Write),
            other => Err(format!(
                "unknown privilege class {other:?}: expected read, execute or write"
            )),
        }
    }
}

impl fmt::Display for OpClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Operation {
    /// `read` is read, `broadcast` is write, every other operation is execute.
    pub fn class(self) -> OpClass {
        match self {
            Operation::Read => OpClass::Read,
            Operation::Broadcast => OpClass::Write,
            _ => OpClass::Execute,
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }

    /// The past-tense verb used in the human audit line ("User x paused ...").
    pub fn past_tense(self) -> &'static str {
        match self {
            Operation::Broadcast => "broadcast to",
            Operation::Clean => "cleaned",
            Operation::ExtTrigger => "externally triggered",
            Operation::Hold => "held",
            Operation::Kill => "killed",
            Operation::Message => "sent a message to",
            Operation::Pause => "paused",
            Operation::Play => "played",
            Operation::Poll => "polled",
            Operation::Read => "read",
            Operation::Release => "released",
            Operation::ReleaseHoldPoint => "released the hold point of",
            Operation::Reload => "reloaded",
            Operation::Remove => "removed",
            Operation::Resume => "resumed",
            Operation::Scan => "scanned",
            Operation::Set => "set outputs of",
            Operation::SetGraphWindowExtent => "set the graph window extent of",
            Operation::SetHoldPoint => "set the hold point of",
            Operation::SetVerbosity => "set the verbosity of",
            Operation::Stop => "stopped",
            Operation::Trigger => "triggered",
        }
    }
}

/// A set of operations as a bitmask: decisions are bit operations, never allocations.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OpSet(u32);

impl OpSet {
    pub const EMPTY: OpSet = OpSet(0);
    pub const ALL: OpSet = OpSet((1 << 22) - 1);
    pub const READ_LEVEL: OpSet = OpSet(1 << (Operation::Read as u32));
    pub const WRITE_LEVEL: OpSet = OpSet(1 << (Operation::Broadcast as u32));
    pub const CONTROL_LEVEL: OpSet =
        OpSet(Self::ALL.0 & !Self::READ_LEVEL.0 & !Self::WRITE_LEVEL.0);

    pub const fn from_bits(bits: u32) -> OpSet {
        OpSet(bits & Self::ALL.0)
    }
    pub const fn bits(self) -> u32 {
        self.0
    }
    pub fn single(op: Operation) -> OpSet {
        OpSet(op.bit())
    }
    pub const fn union(self, other: OpSet) -> OpSet {
        OpSet(self.0 | other.0)
    }
    pub const fn intersect(self, other: OpSet) -> OpSet {
        OpSet(self.0 & other.0)
    }
    pub const fn minus(self, other: OpSet) -> OpSet {
        OpSet(self.0 & !other.0)
    }
    pub fn contains(self, op: Operation) -> bool {
        self.0 & op.bit() != 0
    }
    pub fn insert(&mut self, op: Operation) {
        self.0 |= op.bit();
    }
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }
    pub fn iter(self) -> impl Iterator<Item = Operation> {
        Operation::ALL
            .into_iter()
            .filter(move |op| self.contains(*op))
    }
    /// Sorted operation names, the form `steward policy permitted` prints.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Operation::name).collect()
    }
}

impl FromIterator<Operation> for OpSet {
    fn from_iter<I: IntoIterator<Item = Operation>>(iter: I) -> Self {
        let mut set = OpSet::EMPTY;
        for op in iter {
            set.insert(op);
        }
        set
    }
}

impl fmt::Debug for OpSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

impl Serialize for OpSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

impl<'de> Deserialize<'de> for OpSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        names
            .iter()
            .map(|n| n.parse::<Operation>().map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_sorted() {
        let names: Vec<_> = Operation::ALL.iter().map(|o| o.name()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        for op in Operation::ALL {
            assert_eq!(op.name().parse::<Operation>().unwrap(), op);
        }
        assert!("pasue".parse::<Operation>().is_err());
    }

    #[test]
    fn levels_partition_all_operations() {
        assert_eq!(OpSet::CONTROL_LEVEL.len(), 20);
        assert_eq!(
            OpSet::READ_LEVEL
                .union(OpSet::CONTROL_LEVEL)
                .union(OpSet::WRITE_LEVEL),
            OpSet::ALL
        );
        for op in OpSet::CONTROL_LEVEL.iter() {
            assert_eq!(op.class(), OpClass::Execute);
        }
    }

    #[test]
    fn opset_serializes_as_sorted_names() {
        let set: OpSet = [Operation::Stop, Operation::Pause, Operation::Read]
            .into_iter()
            .collect();
        assert_eq!(
            serde_json::to_string(&set).unwrap(),
            r#"["pause","read","stop"]"#
        );
    }
}
