//! The site policy file: what each owner may give away, and the defaults.
//!
//! ```toml
//! [owners."<owner-key>"."<user-key>"]
//! default = "READ"                 # used when the owner's user file names nobody matching
//! limit   = ["READ", "CONTROL"]    # the most the owner may give; falls back to `default`
//! ```
//! This is Cylc's `site_authorization` (`{owner: {user: {default, limit}}}`) written
//! as TOML. Parsing reports every problem with its position; compiling builds a
//! two-level index (owner key → user key → entry) for decisions.

use crate::diag::{Diagnostic, Diagnostics, Pos};
use crate::doc::{self, Table, Value};
use crate::index::{KeyMap, Probe};
use crate::perms::{parse_key, Bits, Ctx, Key, PermList};

/// One `[owners."o"."u"]` table.
#[derive(Debug, Clone)]
pub struct SiteEntry {
    pub owner_key: Key,
    pub user_key: Key,
    pub default: Option<PermList>,
    pub limit: Option<PermList>,
    /// Where the entry starts (its table header or key).
    pub pos: Pos,
    pub(crate) default_bits: Bits,
    /// `limit`, or `default` when there is no `limit` (Cylc's rule).
    pub(crate) limit_bits: Bits,
    /// The operation-independent part of this entry's explanation lines (header and
    /// list; `[0]` its default line, `[1]` its limit line), rendered the first time a
    /// decision explains with this entry.
    pub(crate) texts: [std::sync::OnceLock<Box<str>>; 2],
}

impl SiteEntry {
    /// The list that acts as this entry's limit: `limit`, else `default`.
    pub fn effective_limit(&self) -> Option<&PermList> {
        self.limit.as_ref().or(self.default.as_ref())
    }
}

/// What a decision needs of a matching site entry, stored in the index slot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SiteHit {
    pub idx: u32,
    pub limit: Bits,
    pub default: Bits,
}

/// A parsed, checked and indexed site policy. Immutable once built; share it behind
/// an `Arc` (see [`crate::PolicyStore`]).
#[derive(Debug, Clone)]
pub struct SitePolicy {
    pub(crate) origin: String,
    pub(crate) entries: Vec<SiteEntry>,
    /// owner key → user key → the entry's index and bits (kept in the map slot so a
    /// decision does not fetch the entry itself).
    pub(crate) index: KeyMap<KeyMap<SiteHit>>,
    pub(crate) warnings: Vec<Diagnostic>,
}

const ENTRY_KEYS: &[&str] = &["default", "limit"];

impl SitePolicy {
    /// A policy with no entries: nobody but an owner may do anything.
    pub fn empty(origin: &str) -> SitePolicy {
        SitePolicy {
            origin: origin.to_string(),
            entries: Vec::new(),
            index: KeyMap::default(),
            warnings: Vec::new(),
        }
    }

    /// Parse and compile a site policy. `origin` names the file in diagnostics and
    /// explanations. Any error → `Err` with every problem found (warnings included);
    /// warnings alone → `Ok`, readable through [`SitePolicy::warnings`].
    pub fn parse(src: &str, origin: &str) -> Result<SitePolicy, Diagnostics> {
        let mut cx = Ctx::new(origin, src);
        let root = match doc::parse(src) {
            Ok(root) => root,
            Err(e) => return Err(crate::syntax_error(&cx, &e)),
        };
        let mut entries = Vec::new();
        for (k, item) in root.iter() {
            let kpos = cx.at(k);
            let k = k.get_ref().as_ref();
            if k == "owners" {
                match item.get_ref() {
                    Value::Table(owners) => parse_owners(&mut cx, owners, &mut entries),
                    _ => cx.error(
                        cx.at(item),
                        format!(
                            "\"owners\" must be a table, e.g. [owners.\"*\".\"*\"]; found {}",
                            doc::describe(item)
                        ),
                    ),
                }
            } else if k == "grants" || k == "workflows" {
                cx.error(
                    kpos,
                    format!("{k:?} belongs in a user policy file, not the site policy; the site file has only [owners.\"<owner>\".\"<user>\"] tables"),
                );
            } else {
                cx.unknown_key(k, kpos, &["owners"], "the site policy");
            }
        }
        let mut diags = cx.diags;
        diags.sort();
        if diags.has_errors() {
            return Err(diags);
        }
        let mut policy = SitePolicy::compile(origin, entries);
        policy.warnings = diags.0;
        Ok(policy)
    }

    /// Build the index over already-checked entries.
    pub(crate) fn compile(origin: &str, entries: Vec<SiteEntry>) -> SitePolicy {
        // TOML forbids duplicate tables, so (owner key, user key) is unique.
        let mut by_owner: std::collections::BTreeMap<&Key, Vec<(Key, SiteHit)>> =
            Default::default();
        for (i, e) in entries.iter().enumerate() {
            by_owner.entry(&e.owner_key).or_default().push((
                e.user_key.clone(),
                SiteHit {
                    idx: i as u32,
                    limit: e.limit_bits,
                    default: e.default_bits,
                },
            ));
        }
        let index = KeyMap::from_entries(
            by_owner
                .into_iter()
                .map(|(k, users)| (k.clone(), KeyMap::from_entries(users))),
        );
        SitePolicy {
            origin: origin.to_string(),
            entries,
            index,
            warnings: Vec::new(),
        }
    }

    /// Problems that did not stop the policy from taking effect (unknown names).
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// Where this policy came from (the `origin` given to `parse`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The entries in file order.
    pub fn entries(&self) -> &[SiteEntry] {
        &self.entries
    }

    /// Number of `[owners."o"."u"]` entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Call `f` for every entry matching both the owner and the user.
    #[inline]
    pub(crate) fn for_each_match<'s>(
        &'s self,
        owner: &Probe,
        actor: &Probe,
        mut f: impl FnMut(&'s SiteHit),
    ) {
        if self.index.is_empty() {
            return;
        }
        self.index
            .for_each_match(owner, |users| users.for_each_match(actor, &mut f));
    }
}

fn parse_owners(cx: &mut Ctx, owners: &Table, out: &mut Vec<SiteEntry>) {
    for (okey, oitem) in owners.iter() {
        let opos = cx.at(okey);
        let okey = okey.get_ref().as_ref();
        let owner_key = parse_key(okey, cx.file, opos, &mut cx.diags);
        let Value::Table(users) = oitem.get_ref() else {
            cx.error(
                cx.at(oitem),
                format!(
                    "owners.{okey:?} must be a table of user keys, e.g. [owners.{okey:?}.\"*\"]; found {}",
                    doc::describe(oitem)
                ),
            );
            continue;
        };
        for (ukey, uitem) in users.iter() {
            let upos = cx.at(ukey);
            let ukey = ukey.get_ref().as_ref();
            let user_key = parse_key(ukey, cx.file, upos, &mut cx.diags);
            // An entry opened by its own [header] is where the header is; one written
            // inline or with dotted keys is where its key is.
            let entry_pos = if doc::is_header_table(uitem, cx.src) {
                cx.at(uitem)
            } else {
                upos
            };
            let header = || format!("[owners.{okey:?}.{ukey:?}]");
            let Value::Table(tbl) = uitem.get_ref() else {
                cx.error(
                    cx.at(uitem),
                    format!(
                        "{} must be a table with `default` and/or `limit`, e.g. {{ default = \"READ\" }}; found {}",
                        header(),
                        doc::describe(uitem)
                    ),
                );
                continue;
            };
            let mut default = None;
            let mut limit = None;
            let mut ok = true;
            for (k, v) in tbl.iter() {
                match k.get_ref().as_ref() {
                    "default" => {
                        default =
                            cx.perm_list(v, &|| format!("[owners.{okey:?}.{ukey:?}] default"));
                        ok &= default.is_some();
                    }
                    "limit" => {
                        limit = cx.perm_list(v, &|| format!("[owners.{okey:?}.{ukey:?}] limit"));
                        ok &= limit.is_some();
                    }
                    other => {
                        let kpos = cx.at(k);
                        cx.unknown_key(other, kpos, ENTRY_KEYS, &header());
                        ok = false;
                    }
                }
            }
            if ok && default.is_none() && limit.is_none() {
                cx.warning(
                    entry_pos,
                    format!("{} has neither `default` nor `limit`: it grants nothing and lets the owner give nothing", header()),
                );
            }
            let (Some(owner_key), Some(user_key), true) = (owner_key.clone(), user_key, ok) else {
                continue;
            };
            let mut default_bits = Bits::default();
            if let Some(d) = &default {
                default_bits.add(d);
            }
            let mut limit_bits = Bits::default();
            if let Some(l) = limit.as_ref().or(default.as_ref()) {
                limit_bits.add(l);
            }
            out.push(SiteEntry {
                owner_key,
                user_key,
                default,
                limit,
                pos: entry_pos,
                default_bits,
                limit_bits,
                texts: Default::default(),
            });
        }
    }
}
