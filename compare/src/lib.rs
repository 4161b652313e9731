//! Nothing here: the comparisons are in tests/ and benches/.
