//! `strata serve` settings: command-line flags over a TOML file (`--config`) over defaults.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

#[derive(clap::Args, Debug, Default)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (snake_case keys); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where the event log, keys and state live [default: ./strata-data]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The admin user's password. Default: the one kept in the data dir, or a generated one on first start.
    /// A different value on a later start resets the admin password.
    #[arg(long, env = "STRATA_ADMIN_PASSWORD")]
    pub admin_password: Option<String>,
    /// Where to write clouds.yaml (cloud `strata`) [default: ./clouds.yaml]
    #[arg(long)]
    pub clouds_yaml: Option<PathBuf>,
    /// Address every API binds to [default: 127.0.0.1]
    #[arg(long)]
    pub bind: Option<IpAddr>,
    /// Keystone port; 0 picks a free one [default: 5000]
    #[arg(long)]
    pub identity_port: Option<u16>,
    /// Glance port; 0 picks a free one [default: 9292]
    #[arg(long)]
    pub image_port: Option<u16>,
    /// Nova port; 0 picks a free one [default: 8774]
    #[arg(long)]
    pub compute_port: Option<u16>,
    /// Cinder port; 0 picks a free one [default: 8776]
    #[arg(long)]
    pub volume_port: Option<u16>,
    /// Neutron port; 0 picks a free one [default: 9696]
    #[arg(long)]
    pub network_port: Option<u16>,
    /// Swift port; 0 picks a free one [default: 8080]
    #[arg(long)]
    pub object_port: Option<u16>,
    /// Audit API and event streams port; 0 picks a free one [default: 8999]
    #[arg(long)]
    pub audit_port: Option<u16>,
    /// CIDR of the subnet of the external network `public` made on first start [default: 172.24.4.0/24]
    #[arg(long)]
    pub public_network_cidr: Option<String>,
    /// Do not make the external network `public` on first start
    #[arg(long)]
    pub no_public_network: bool,
    /// Volume backends, each `name:driver:size_gb[:format]` (driver `file` or `fake`; format `raw` or
    /// `qcow2` for `file`); repeatable [default: lvm-1:file:100:raw]
    #[arg(long = "volume-backend")]
    pub volume_backends: Vec<String>,
    /// Images one project may own [default: 1000]
    #[arg(long)]
    pub image_quota_count: Option<u64>,
    /// Image bytes one project may store [default: 1 TiB]
    #[arg(long)]
    pub image_quota_bytes: Option<u64>,
    /// Glance store uploads go to when they name none: `file` or `swift` [default: file]
    #[arg(long)]
    pub image_default_store: Option<String>,
    /// Where volume backups are kept: `directory` (under the data dir) or `swift` (objects in the
    /// backup's project account) [default: directory]
    #[arg(long)]
    pub backup_target: Option<String>,
    /// Region name in the catalog [default: RegionOne]
    #[arg(long)]
    pub region: Option<String>,
    /// Token lifetime in seconds [default: 3600]
    #[arg(long)]
    pub token_ttl: Option<u64>,
    /// HTTP worker threads per service [default: 2]
    #[arg(long)]
    pub workers: Option<usize>,
    /// In-process fake compute hosts `fake-0` ... `fake-<N-1>` [default: 1]
    #[arg(long)]
    pub fake_hosts: Option<usize>,
    /// Resources of each fake host, `vcpus=V,ram_mb=R,disk_gb=D` [default: vcpus=16,ram_mb=65536,disk_gb=1000]
    #[arg(long)]
    pub fake_host_spec: Option<String>,
    /// Latency of every fake hypervisor call, in milliseconds [default: 0]
    #[arg(long)]
    pub fake_driver_latency_ms: Option<u64>,
    /// Seconds a server may stay in BUILD before it ends in ERROR [default: 300]
    #[arg(long)]
    pub build_timeout: Option<u64>,
    /// Seconds between compute service heartbeats [default: 10]
    #[arg(long)]
    pub heartbeat_interval: Option<u64>,
    /// Seconds of silence after which a compute service is down [default: 60]
    #[arg(long)]
    pub service_down_time: Option<u64>,
    /// Seconds between power-state syncs [default: 10]
    #[arg(long)]
    pub power_sync_interval: Option<u64>,
    /// The scheduler picks randomly among this many best hosts [default: 1]
    #[arg(long)]
    pub host_subset_size: Option<usize>,
    /// Tests only: once the cloud is up, every N-th read of the whole log fails (shows that everything
    /// following the log resumes).
    #[arg(long, hide = true, default_value_t = 0)]
    pub debug_log_read_faults: u64,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    admin_password: Option<String>,
    clouds_yaml: Option<PathBuf>,
    bind: Option<IpAddr>,
    identity_port: Option<u16>,
    image_port: Option<u16>,
    compute_port: Option<u16>,
    volume_port: Option<u16>,
    network_port: Option<u16>,
    object_port: Option<u16>,
    audit_port: Option<u16>,
    public_network_cidr: Option<String>,
    no_public_network: Option<bool>,
    volume_backends: Option<Vec<String>>,
    image_quota_count: Option<u64>,
    image_quota_bytes: Option<u64>,
    image_default_store: Option<String>,
    backup_target: Option<String>,
    region: Option<String>,
    token_ttl: Option<u64>,
    workers: Option<usize>,
    fake_hosts: Option<usize>,
    fake_host_spec: Option<String>,
    fake_driver_latency_ms: Option<u64>,
    build_timeout: Option<u64>,
    heartbeat_interval: Option<u64>,
    service_down_time: Option<u64>,
    power_sync_interval: Option<u64>,
    host_subset_size: Option<usize>,
}

/// Settings after merging flags, file and defaults.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub admin_password: Option<String>,
    pub clouds_yaml: PathBuf,
    pub bind: IpAddr,
    pub identity_port: u16,
    pub image_port: u16,
    pub compute_port: u16,
    pub volume_port: u16,
    pub network_port: u16,
    pub object_port: u16,
    pub audit_port: u16,
    /// The subnet of the external network `public` made on first start; None = make none.
    pub public_network_cidr: Option<String>,
    /// (name, driver, size GB, format)
    pub volume_backends: Vec<(String, String, u64, String)>,
    pub image_quota_count: u64,
    pub image_quota_bytes: u64,
    /// `file` or `swift`.
    pub image_default_store: String,
    /// `directory` or `swift`.
    pub backup_target: String,
    pub region: String,
    pub token_ttl: u64,
    pub workers: usize,
    pub fake_hosts: usize,
    /// (vcpus, ram_mb, disk_gb) of each fake host.
    pub fake_host_spec: (u32, u64, u64),
    pub fake_driver_latency_ms: u64,
    pub build_timeout: u64,
    pub heartbeat_interval: u64,
    pub service_down_time: u64,
    pub power_sync_interval: u64,
    pub host_subset_size: usize,
    /// Tests only: 0, or every N-th `read_all` fails once the cloud is up.
    pub debug_log_read_faults: u64,
}

/// Parse `name:driver:size_gb[:format]`.
pub fn parse_backend(s: &str) -> anyhow::Result<(String, String, u64, String)> {
    let parts: Vec<&str> = s.split(':').collect();
    let (name, driver, size) = match parts.as_slice() {
        [n, d, sz] | [n, d, sz, _] => (*n, *d, *sz),
        _ => anyhow::bail!("volume backend {s:?}: expected name:driver:size_gb[:format]"),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        anyhow::bail!("volume backend {s:?}: the name must be letters, digits, - or _");
    }
    if !matches!(driver, "file" | "fake") {
        anyhow::bail!("volume backend {s:?}: driver must be file or fake");
    }
    let size: u64 = size
        .parse()
        .with_context(|| format!("volume backend {s:?}: size_gb"))?;
    let format = parts.get(3).copied().unwrap_or("raw");
    if !matches!(format, "raw" | "qcow2") {
        anyhow::bail!("volume backend {s:?}: format must be raw or qcow2");
    }
    Ok((name.into(), driver.into(), size, format.into()))
}

/// Parse `vcpus=V,ram_mb=R,disk_gb=D` (any subset; the rest keep their defaults).
pub fn parse_host_spec(s: &str) -> anyhow::Result<(u32, u64, u64)> {
    let (mut vcpus, mut ram, mut disk) = (16u32, 65536u64, 1000u64);
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .with_context(|| format!("fake host spec: {part:?} is not key=value"))?;
        match k {
            "vcpus" => {
                vcpus = v
                    .parse()
                    .with_context(|| format!("fake host spec: vcpus={v}"))?
            }
            "ram_mb" => {
                ram = v
                    .parse()
                    .with_context(|| format!("fake host spec: ram_mb={v}"))?
            }
            "disk_gb" => {
                disk = v
                    .parse()
                    .with_context(|| format!("fake host spec: disk_gb={v}"))?
            }
            other => {
                anyhow::bail!("fake host spec: unknown key {other:?} (vcpus, ram_mb, disk_gb)")
            }
        }
    }
    Ok((vcpus, ram, disk))
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

impl ServeArgs {
    pub fn resolve(self) -> anyhow::Result<ServeConfig> {
        let file = match &self.config {
            Some(p) => read_file(p)?,
            None => FileConfig::default(),
        };
        let c = self.merge(file)?;
        if c.service_down_time <= c.heartbeat_interval {
            anyhow::bail!(
                "service_down_time ({} s) must be longer than heartbeat_interval ({} s), or every compute service looks down between heartbeats",
                c.service_down_time,
                c.heartbeat_interval
            );
        }
        Ok(c)
    }

    fn merge(self, file: FileConfig) -> anyhow::Result<ServeConfig> {
        Ok(ServeConfig {
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./strata-data")),
            admin_password: self.admin_password.or(file.admin_password),
            clouds_yaml: self
                .clouds_yaml
                .or(file.clouds_yaml)
                .unwrap_or_else(|| PathBuf::from("./clouds.yaml")),
            bind: self
                .bind
                .or(file.bind)
                .unwrap_or(IpAddr::from([127, 0, 0, 1])),
            identity_port: self.identity_port.or(file.identity_port).unwrap_or(5000),
            image_port: self.image_port.or(file.image_port).unwrap_or(9292),
            compute_port: self.compute_port.or(file.compute_port).unwrap_or(8774),
            volume_port: self.volume_port.or(file.volume_port).unwrap_or(8776),
            network_port: self.network_port.or(file.network_port).unwrap_or(9696),
            object_port: self.object_port.or(file.object_port).unwrap_or(8080),
            audit_port: self.audit_port.or(file.audit_port).unwrap_or(8999),
            public_network_cidr: if self.no_public_network
                || file.no_public_network.unwrap_or(false)
            {
                None
            } else {
                let cidr = self
                    .public_network_cidr
                    .or(file.public_network_cidr)
                    .unwrap_or_else(|| "172.24.4.0/24".to_string());
                strata_actors::network::ipam::Cidr::parse(&cidr)
                    .map_err(|e| anyhow::anyhow!("--public-network-cidr: {e}"))?;
                Some(cidr)
            },
            volume_backends: {
                let specs = if self.volume_backends.is_empty() {
                    file.volume_backends
                        .unwrap_or_else(|| vec!["lvm-1:file:100:raw".to_string()])
                } else {
                    self.volume_backends
                };
                specs
                    .iter()
                    .map(|s| parse_backend(s))
                    .collect::<anyhow::Result<Vec<_>>>()?
            },
            image_quota_count: self
                .image_quota_count
                .or(file.image_quota_count)
                .unwrap_or(1000),
            image_quota_bytes: self
                .image_quota_bytes
                .or(file.image_quota_bytes)
                .unwrap_or(1 << 40),
            image_default_store: {
                let store = self
                    .image_default_store
                    .or(file.image_default_store)
                    .unwrap_or_else(|| "file".into());
                if !matches!(store.as_str(), "file" | "swift") {
                    anyhow::bail!("--image-default-store {store:?}: expected file or swift");
                }
                store
            },
            backup_target: {
                let target = self
                    .backup_target
                    .or(file.backup_target)
                    .unwrap_or_else(|| "directory".into());
                if !matches!(target.as_str(), "directory" | "swift") {
                    anyhow::bail!("--backup-target {target:?}: expected directory or swift");
                }
                target
            },
            region: self
                .region
                .or(file.region)
                .unwrap_or_else(|| "RegionOne".into()),
            token_ttl: self.token_ttl.or(file.token_ttl).unwrap_or(3600),
            workers: self.workers.or(file.workers).unwrap_or(2),
            fake_hosts: self.fake_hosts.or(file.fake_hosts).unwrap_or(1),
            fake_host_spec: parse_host_spec(
                self.fake_host_spec
                    .or(file.fake_host_spec)
                    .as_deref()
                    .unwrap_or(""),
            )?,
            fake_driver_latency_ms: self
                .fake_driver_latency_ms
                .or(file.fake_driver_latency_ms)
                .unwrap_or(0),
            build_timeout: self.build_timeout.or(file.build_timeout).unwrap_or(300),
            heartbeat_interval: self
                .heartbeat_interval
                .or(file.heartbeat_interval)
                .unwrap_or(10)
                .max(1),
            service_down_time: self
                .service_down_time
                .or(file.service_down_time)
                .unwrap_or(60),
            power_sync_interval: self
                .power_sync_interval
                .or(file.power_sync_interval)
                .unwrap_or(10)
                .max(1),
            host_subset_size: self.host_subset_size.or(file.host_subset_size).unwrap_or(1),
            debug_log_read_faults: self.debug_log_read_faults,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strata.toml");
        std::fs::write(
            &path,
            "identity_port = 5555\nregion = \"Lab\"\ndata_dir = \"/tmp/x\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            identity_port: Some(0),
            ..Default::default()
        };
        let c = args.resolve().unwrap();
        assert_eq!(c.identity_port, 0);
        assert_eq!(c.region, "Lab");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.bind.to_string(), "127.0.0.1");
        std::fs::write(&path, "no_such_key = 1\n").unwrap();
        assert!(ServeArgs {
            config: Some(path),
            ..Default::default()
        }
        .resolve()
        .is_err());
    }
}
