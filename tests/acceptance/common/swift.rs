//! Helpers for the object storage acceptance tests: binary-safe HTTP against Swift, the admin's account,
//! and the blob files on disk (to check that nothing is left behind).

use std::io::Read;
use std::path::Path;

use super::*;

/// A Swift response with a binary body.
pub type Bin = RawResp;

/// One request; `body` is sent with a Content-Length, `chunked` bodies with chunked transfer encoding.
pub fn swift_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    chunked: bool,
) -> Bin {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .redirects(0)
        .build();
    let mut req = agent.request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = match (body, chunked) {
        (Some(b), true) => req.send(std::io::Cursor::new(b.to_vec())),
        (Some(b), false) => req.send_bytes(b),
        (None, _) => req.call(),
    };
    let (status, headers, resp) = answer(method, url, result).unwrap_or_else(|e| panic!("{e}"));
    let mut body = Vec::new();
    resp.into_reader()
        .read_to_end(&mut body)
        .unwrap_or_else(|e| panic!("{method} {url}: reading body: {e}"));
    Bin {
        method: method.into(),
        url: url.into(),
        status,
        headers,
        body,
    }
}

/// A caller of one account: the account URL and a token (None = anonymous).
#[derive(Debug, Clone)]
pub struct Account {
    pub url: String,
    pub token: Option<String>,
}

impl Account {
    /// The admin's own account.
    pub fn admin(server: &Server) -> Account {
        let token = server.admin_token();
        let project = nova::project_id_of(server, &token, "admin");
        Account {
            url: server.swift_account_url(&project),
            token: Some(token),
        }
    }

    /// The same account seen with another token (or none).
    pub fn as_caller(&self, token: Option<&str>) -> Account {
        Account {
            url: self.url.clone(),
            token: token.map(str::to_string),
        }
    }

    /// `<account url>/<path>` (path already percent-encoded where needed).
    pub fn url_of(&self, path: &str) -> String {
        if path.is_empty() {
            self.url.clone()
        } else {
            format!("{}/{}", self.url, path)
        }
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Bin {
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(t) = &self.token {
            all.push(("X-Auth-Token", t));
        }
        swift_request(method, &self.url_of(path), &all, body, false)
    }

    pub fn put(&self, path: &str, body: &[u8]) -> Bin {
        self.call("PUT", path, &[], Some(body))
    }

    pub fn get(&self, path: &str) -> Bin {
        self.call("GET", path, &[], None)
    }

    pub fn head(&self, path: &str) -> Bin {
        self.call("HEAD", path, &[], None)
    }

    pub fn delete(&self, path: &str) -> Bin {
        self.call("DELETE", path, &[], None)
    }

    /// Names in a container (or containers of the account) from the JSON listing.
    pub fn names(&self, path_and_query: &str) -> Vec<String> {
        let sep = if path_and_query.contains('?') {
            '&'
        } else {
            '?'
        };
        let r = self
            .call(
                "GET",
                &format!("{path_and_query}{sep}format=json"),
                &[],
                None,
            )
            .expect(200);
        r.json()
            .as_array()
            .unwrap_or_else(|| panic!("listing is not a list: {}", r.describe()))
            .iter()
            .map(|e| {
                e["name"]
                    .as_str()
                    .or_else(|| e["subdir"].as_str())
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }
}

/// Deterministic pseudo-random bytes.
pub fn bytes_of(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Files under the blob store: (unfinished uploads, stored blobs).
pub fn blob_files(data_dir: &Path) -> (usize, usize) {
    let root = data_dir.join("objects");
    let mut temps = 0;
    let mut blobs = 0;
    let Ok(entries) = std::fs::read_dir(&root) else {
        return (0, 0);
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if name.starts_with(".tmp-") {
            temps += 1;
        } else if path.is_dir() {
            blobs += std::fs::read_dir(&path).map(|d| d.count()).unwrap_or(0);
        }
    }
    (temps, blobs)
}

/// `swift ARGS` (python-swiftclient from the test venv) as the server's admin, run in `cwd`.
pub fn swift_cli(server: &Server, cwd: &Path, args: &[&str]) -> CmdOutput {
    let mut cmd = std::process::Command::new(venv_dir().join("bin").join("swift"));
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("OS_")
            || k.starts_with("ST_")
            || k.to_ascii_lowercase().ends_with("_proxy")
        {
            cmd.env_remove(&k);
        }
    }
    cmd.current_dir(cwd)
        .env("OS_AUTH_URL", server.identity_url())
        .env("OS_USERNAME", "admin")
        .env("OS_PASSWORD", server.admin_password())
        .env("OS_PROJECT_NAME", "admin")
        .env("OS_USER_DOMAIN_NAME", "Default")
        .env("OS_PROJECT_DOMAIN_NAME", "Default")
        .env("OS_IDENTITY_API_VERSION", "3")
        .env("OS_AUTH_VERSION", "3")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("PYTHONWARNINGS", "ignore")
        .args(args);
    run_with_timeout(cmd, Duration::from_secs(120))
}

/// Like [`swift_cli`], panicking with the output (and the server's log tail) unless it succeeded.
pub fn swift_ok(server: &Server, cwd: &Path, args: &[&str]) -> String {
    let out = swift_cli(server, cwd, args);
    assert!(
        out.success,
        "`swift {}` failed:\n{}\n--- server stderr (tail) ---\n{}",
        args.join(" "),
        out.all_text(),
        server.log_tail(30)
    );
    out.stdout
}
