//! Paging parameters shared by the lists: `limit` (1 to 1000, default 100) and `before` (an id).

use std::collections::HashMap;
use tidings_core::FieldError;

#[derive(Clone, Copy, Debug)]
pub struct Page {
    pub limit: u32,
    pub before: Option<i64>,
}

impl Page {
    /// Takes `limit` and `before` out of `query`, adding what is wrong to `errors`; `what` names the ids.
    pub fn take(query: &mut HashMap<String, String>, what: &str, errors: &mut Vec<FieldError>) -> Self {
        let mut page = Page { limit: 100, before: None };
        if let Some(value) = query.remove("limit") {
            match value.parse::<u32>() {
                Ok(n) if (1..=1000).contains(&n) => page.limit = n,
                _ => errors.push(FieldError::new("limit", format!("expected 1 to 1000, got {value:?}"))),
            }
        }
        if let Some(value) = query.remove("before") {
            match value.parse::<i64>() {
                Ok(id) => page.before = Some(id),
                Err(_) => errors.push(FieldError::new("before", format!("expected {what} id, got {value:?}"))),
            }
        }
        page
    }

    /// The `before` of the next page, when this one was full.
    pub fn next_before(&self, ids: impl DoubleEndedIterator<Item = i64> + ExactSizeIterator) -> Option<i64> {
        let full = ids.len() == self.limit as usize;
        ids.last().filter(|_| full)
    }
}
