//! The decision index: entries keyed by who they are for.
//!
//! A decision looks up each of a subject's keys (`*`, the name, each group) instead of
//! scanning entries, so its cost depends on how many groups the people involved are
//! in, not on how many entries the policy has. Two details keep it flat at 10,000
//! entries:
//! - a subject's key hashes are computed once per decision ([`Probe`]) and reused for
//!   every map probed (the site has one user-key map per matching owner key);
//! - maps of at most [`SMALL`] keys are a short vector compared by hash first (one or
//!   two cache lines), larger ones a `hashbrown::HashTable` probed with the
//!   precomputed hash.
//!
//! Hand-written because it is a few dozen lines over `hashbrown`; a generic RBAC crate
//! would model more than Cylc's three kinds of key and could not share the hashes.

use crate::perms::Key;
use crate::Subject;
use hashbrown::HashTable;
use std::hash::BuildHasher;
use std::sync::OnceLock;

/// Maps up to this many named keys are scanned instead of hashed into.
pub(crate) const SMALL: usize = 8;

const USER: u8 = 1;
const GROUP: u8 = 2;

fn state() -> &'static foldhash::fast::RandomState {
    static STATE: OnceLock<foldhash::fast::RandomState> = OnceLock::new();
    STATE.get_or_init(foldhash::fast::RandomState::default)
}

#[inline]
fn hash_of(kind: u8, name: &str) -> u64 {
    state().hash_one((kind, name))
}

fn key_hash(k: &Key) -> Option<(u8, u64)> {
    match k {
        Key::Any => None,
        Key::User(u) => Some((USER, hash_of(USER, u))),
        Key::Group(g) => Some((GROUP, hash_of(GROUP, g))),
    }
}

/// A key's name stored in the table slot itself when short, so confirming a hash
/// match compares bytes already in cache instead of chasing a pointer to the heap.
#[derive(Debug, Clone)]
enum Name {
    Inline { kind: u8, len: u8, bytes: [u8; 22] },
    Heap { kind: u8, name: Box<str> },
}

impl Name {
    fn new(kind: u8, name: &str) -> Name {
        if name.len() <= 22 {
            let mut bytes = [0u8; 22];
            bytes[..name.len()].copy_from_slice(name.as_bytes());
            Name::Inline {
                kind,
                len: name.len() as u8,
                bytes,
            }
        } else {
            Name::Heap {
                kind,
                name: name.into(),
            }
        }
    }

    #[inline]
    fn is(&self, kind: u8, name: &str) -> bool {
        match self {
            Name::Inline {
                kind: k,
                len,
                bytes,
            } => {
                *k == kind && *len as usize == name.len() && bytes[..name.len()] == *name.as_bytes()
            }
            Name::Heap { kind: k, name: n } => *k == kind && **n == *name,
        }
    }
}

const INLINE_GROUPS: usize = 24;

/// A subject's key hashes, computed once per decision.
pub(crate) struct Probe<'s> {
    name: &'s str,
    name_hash: u64,
    groups: &'s [String],
    inline: [u64; INLINE_GROUPS],
    heap: Vec<u64>,
}

impl<'s> Probe<'s> {
    #[inline]
    pub fn new(s: &'s Subject) -> Self {
        let mut p = Probe {
            name: &s.name,
            name_hash: hash_of(USER, &s.name),
            groups: &s.groups,
            inline: [0; INLINE_GROUPS],
            heap: Vec::new(),
        };
        if s.groups.len() <= INLINE_GROUPS {
            for (slot, g) in p.inline.iter_mut().zip(&s.groups) {
                *slot = hash_of(GROUP, g);
            }
        } else {
            p.heap = s.groups.iter().map(|g| hash_of(GROUP, g)).collect();
        }
        p
    }

    #[inline]
    fn group_hashes(&self) -> &[u64] {
        if self.heap.is_empty() {
            &self.inline[..self.groups.len()]
        } else {
            &self.heap
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct KeyMap<T> {
    any: Option<T>,
    /// Named keys when there are at most SMALL of them.
    small: Vec<(u64, Name, T)>,
    table: HashTable<(u64, Name, T)>,
    has_users: bool,
    has_groups: bool,
}

impl<T> Default for KeyMap<T> {
    fn default() -> Self {
        KeyMap {
            any: None,
            small: Vec::new(),
            table: HashTable::new(),
            has_users: false,
            has_groups: false,
        }
    }
}

impl<T> KeyMap<T> {
    /// Build from unique keys.
    pub fn from_entries(entries: impl IntoIterator<Item = (Key, T)>) -> Self {
        let mut m = KeyMap::default();
        let mut named = Vec::new();
        for (k, v) in entries {
            match (&k, key_hash(&k)) {
                (Key::User(n) | Key::Group(n), Some((kind, h))) => {
                    m.has_users |= kind == USER;
                    m.has_groups |= kind == GROUP;
                    named.push((h, Name::new(kind, n), v));
                }
                _ => m.any = Some(v),
            }
        }
        if named.len() <= SMALL {
            m.small = named;
        } else {
            m.table = HashTable::with_capacity(named.len());
            for e in named {
                m.table.insert_unique(e.0, e, |e| e.0);
            }
        }
        m
    }

    pub fn is_empty(&self) -> bool {
        self.any.is_none() && !self.has_users && !self.has_groups
    }

    #[inline]
    fn get(&self, hash: u64, kind: u8, name: &str) -> Option<&T> {
        if self.table.is_empty() {
            self.small
                .iter()
                .find(|(h, k, _)| *h == hash && k.is(kind, name))
                .map(|(_, _, v)| v)
        } else {
            self.table
                .find(hash, |(h, k, _)| *h == hash && k.is(kind, name))
                .map(|(_, _, v)| v)
        }
    }

    /// Call `f` for the value of every key matching a subject: `*`, then the name,
    /// then each group in the order given.
    #[inline]
    pub fn for_each_match<'m>(&'m self, p: &Probe, mut f: impl FnMut(&'m T)) {
        if let Some(v) = &self.any {
            f(v);
        }
        if self.has_users {
            if let Some(v) = self.get(p.name_hash, USER, p.name) {
                f(v);
            }
        }
        if self.has_groups {
            for (h, g) in p.group_hashes().iter().zip(p.groups) {
                if let Some(v) = self.get(*h, GROUP, g) {
                    f(v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_maps_find_the_same() {
        for n in [0usize, 3, SMALL, SMALL + 1, 100] {
            let mut entries: Vec<(Key, usize)> = (0..n)
                .map(|i| {
                    if i % 2 == 0 {
                        (Key::User(format!("u{i}")), i)
                    } else {
                        (Key::Group(format!("u{i}")), i)
                    }
                })
                .collect();
            entries.push((Key::Any, 999));
            let m = KeyMap::from_entries(entries);
            for i in 0..n + 2 {
                let s = Subject::new(format!("u{i}"), [format!("u{i}"), "x".to_string()]);
                let p = Probe::new(&s);
                let mut got = Vec::new();
                m.for_each_match(&p, |v| got.push(*v));
                let want: Vec<usize> = if i < n { vec![999, i] } else { vec![999] };
                assert_eq!(got, want, "n={n} i={i}");
            }
        }
        // More groups than fit inline.
        let m = KeyMap::from_entries([(Key::Group("g40".into()), 1)]);
        let s = Subject::new("x", (0..50).map(|i| format!("g{i}")));
        let mut got = Vec::new();
        m.for_each_match(&Probe::new(&s), |v| got.push(*v));
        assert_eq!(got, vec![1]);
    }
}
