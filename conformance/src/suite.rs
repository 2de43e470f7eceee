//! The case files, compiled in so the runner needs no working directory.

use std::collections::BTreeMap;

use crate::case::{Case, CaseFile, ErrorSpec};

const CASE_FILES: [(&str, &str); 15] = [
    ("credential.json", include_str!("../cases/credential.json")),
    ("key_format.json", include_str!("../cases/key_format.json")),
    ("lifecycle.json", include_str!("../cases/lifecycle.json")),
    ("resource.json", include_str!("../cases/resource.json")),
    ("scope.json", include_str!("../cases/scope.json")),
    ("domain.json", include_str!("../cases/domain.json")),
    ("rate_limit.json", include_str!("../cases/rate_limit.json")),
    ("unavailable.json", include_str!("../cases/unavailable.json")),
    ("routes.json", include_str!("../cases/routes.json")),
    ("paths.json", include_str!("../cases/paths.json")),
    ("verify.json", include_str!("../cases/verify.json")),
    ("audit.json", include_str!("../cases/audit.json")),
    ("network.json", include_str!("../cases/network.json")),
    ("credits.json", include_str!("../cases/credits.json")),
    ("leaks.json", include_str!("../cases/leaks.json")),
];

const ERRORS: &str = include_str!("../cases/errors.json");

pub struct Suite {
    pub files: Vec<CaseFile>,
    pub errors: BTreeMap<String, ErrorSpec>,
}

impl Suite {
    pub fn load() -> Result<Self, String> {
        let errors = serde_json::from_str(ERRORS).map_err(|e| format!("errors.json: {e}"))?;
        let files = CASE_FILES
            .iter()
            .map(|(name, text)| serde_json::from_str(text).map_err(|e| format!("{name}: {e}")))
            .collect::<Result<Vec<CaseFile>, _>>()?;
        let suite = Suite { files, errors };
        let mut names: Vec<_> = suite.cases().map(|(g, c)| format!("{g}/{}", c.name)).collect();
        names.sort();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("two cases are named {}", w[0]));
        }
        Ok(suite)
    }

    /// Every case with its group, in file order.
    pub fn cases(&self) -> impl Iterator<Item = (&str, &Case)> {
        self.files.iter().flat_map(|f| f.cases.iter().map(move |c| (f.group.as_str(), c)))
    }

    pub fn len(&self) -> usize {
        self.cases().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The one documented code with this status, if only one has it (429, 503).
    pub fn code_for_status(&self, status: u16) -> Option<&str> {
        let mut codes = self.errors.iter().filter(|(_, e)| e.status == status).map(|(c, _)| c.as_str());
        match (codes.next(), codes.next()) {
            (Some(code), None) => Some(code),
            _ => None,
        }
    }
}
