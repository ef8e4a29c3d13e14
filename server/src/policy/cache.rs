//! The classification cache: parse once per statement shape, not once per execution.
//!
//! Most traffic repeats a few shapes with different constants (`… WHERE aid = 48213`), so the
//! cache is keyed by the shape key (the lexer's token stream with literals replaced, see
//! [`crate::sql::shape_key`]) — compared exactly, never by a 64-bit hash a client could collide.
//! A classification that depends on a literal's value (`set_config('role', …)`) is marked
//! `literal_sensitive`; its shape then only records "look up the exact text", and the text is
//! cached (and classified) on its own.
//!
//! Sessions run on several threads, so the LRU is split into shards, each behind its own mutex,
//! chosen by a randomly keyed hash of the shape key.

use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;

use super::classify::{classify, Classification};
use crate::sql::shape_key;

const SHARDS: usize = 16;

/// Statements whose shape key is longer than this are classified every time rather than kept:
/// the cache's memory stays bounded by entries × this, whatever clients send.
const MAX_CACHED_KEY: usize = 16 * 1024;

enum Slot {
    /// Every statement of this shape classifies the same.
    Shape(Arc<Classification>),
    /// Literal values matter: look the exact text up in `texts`.
    PerText,
}

struct Shard {
    shapes: LruCache<String, Slot>,
    texts: LruCache<String, Arc<Classification>>,
}

/// A bounded, sharded LRU of classifications.
pub struct ClassifierCache {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
}

thread_local! {
    /// The shape key is rebuilt for every lookup; reuse one buffer per thread.
    static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

impl ClassifierCache {
    /// A cache holding about `capacity` shapes (and as many literal-sensitive texts).
    pub fn new(capacity: usize) -> Self {
        let per_shard =
            NonZeroUsize::new(capacity.div_ceil(SHARDS).max(1)).unwrap_or(NonZeroUsize::MIN);
        ClassifierCache {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        shapes: LruCache::new(per_shard),
                        texts: LruCache::new(per_shard),
                    })
                })
                .collect(),
            hasher: RandomState::new(),
        }
    }

    /// The classification of `sql`, from the cache when its shape (or, for literal-sensitive
    /// shapes, its text) has been seen.
    pub fn classify(&self, sql: &str) -> Arc<Classification> {
        KEY.with(|k| {
            let mut key = k.borrow_mut();
            shape_key(sql, &mut key);
            self.classify_keyed(sql, &key)
        })
    }

    /// [`ClassifierCache::classify`] for a statement whose [`shape_key`] is already known.
    pub fn classify_keyed(&self, sql: &str, key: &str) -> Arc<Classification> {
        if key.len() > MAX_CACHED_KEY {
            return Arc::new(classify(sql));
        }
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        {
            let mut s = shard.lock().unwrap_or_else(|p| p.into_inner());
            let per_text = match s.shapes.get(key) {
                Some(Slot::Shape(c)) => return c.clone(),
                Some(Slot::PerText) => true,
                None => false,
            };
            if per_text {
                if let Some(c) = s.texts.get(sql) {
                    return c.clone();
                }
            }
        }
        // Parse outside the lock: other sessions on this shard keep going meanwhile.
        let c = Arc::new(classify(sql));
        let mut s = shard.lock().unwrap_or_else(|p| p.into_inner());
        if c.literal_sensitive {
            s.shapes.put(key.to_string(), Slot::PerText);
            s.texts.put(sql.to_string(), c.clone());
        } else {
            s.shapes.put(key.to_string(), Slot::Shape(c.clone()));
        }
        c
    }

    /// Shapes and texts held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = s.lock().unwrap_or_else(|p| p.into_inner());
                s.shapes.len() + s.texts.len()
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_parse_per_shape_but_literals_that_matter_are_kept_apart() {
        let cache = ClassifierCache::new(64);
        let a = cache.classify("SELECT abalance FROM pgbench_accounts WHERE aid = 1");
        let b = cache.classify("select abalance from pgbench_accounts where aid = 2");
        assert!(Arc::ptr_eq(&a, &b), "same shape, one classification");
        assert_eq!(cache.len(), 1);

        let safe = cache.classify("SELECT set_config('search_path', 'app', false)");
        let role = cache.classify("SELECT set_config('role', 'postgres', false)");
        assert!(!safe.role_change);
        assert!(role.role_change, "same shape, different meaning");
        assert!(
            cache
                .classify("SELECT set_config('role', 'postgres', false)")
                .role_change
        );
        assert!(
            !cache
                .classify("SELECT set_config('search_path', 'app', false)")
                .role_change
        );
    }

    #[test]
    fn a_backslash_in_a_string_never_reuses_a_clean_shape() {
        let cache = ClassifierCache::new(64);
        assert!(!cache.classify("SELECT 'a'; SELECT 'b'").destructive);
        // Same tokens to a standard-strings lexer; a DROP when standard_conforming_strings is off.
        let tricky = cache.classify("SELECT 'a\\'; SELECT ' ; DROP TABLE users; --'");
        assert!(tricky.destructive);
    }

    #[test]
    fn bounded_and_usable_from_many_threads() {
        let cache = Arc::new(ClassifierCache::new(32));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let c = cache.classify(&format!("SELECT c{i} FROM t{t} WHERE id = {i}"));
                        assert!(c.analysable);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert!(cache.len() <= 32 + SHARDS * 2, "{}", cache.len());
    }
}
