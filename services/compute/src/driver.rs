//! The hypervisor driver interface of a compute agent, and the `fake` driver.
//!
//! The fake driver keeps its VMs in memory, answers after a configurable latency, and takes fault injection
//! from the server's metadata so acceptance tests can drive failures through the public API:
//!
//! | metadata key | effect |
//! |---|---|
//! | `fake:fail` | comma-separated operations that fail: `spawn`, `reboot`, `power_off`, `power_on`, `pause`, `suspend`, `migrate`, `rebuild`, `snapshot`, `destroy` |
//! | `fake:power_off_after_ms` | the VM stops by itself this long after it started (the power-state sync records it) |
//! | `fake:spawn_delay_ms` | extra time the spawn takes |

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strata_actors::compute::server::power;
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DriverError {
    #[error("{0}")]
    Failed(String),
    #[error("instance {0} not found on the hypervisor")]
    NotFound(String),
}

/// What a driver needs to know about a server.
#[derive(Debug, Clone, Default)]
pub struct VmSpec {
    pub id: String,
    pub name: String,
    pub vcpus: u32,
    pub ram_mb: u64,
    pub disk_gb: u64,
    pub image_id: String,
    pub metadata: BTreeMap<String, String>,
    /// Cinder volumes plugged in, volume id -> device (`/dev/vda` for a boot volume).
    pub volumes: BTreeMap<String, String>,
    /// Neutron ports plugged in, in order (eth0, eth1, ...).
    pub ports: Vec<String>,
}

/// Resources a hypervisor offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostStats {
    pub vcpus: u32,
    pub ram_mb: u64,
    pub disk_gb: u64,
}

/// The operations nova-compute asks of a hypervisor. Every call is for one server on this host.
#[async_trait::async_trait]
pub trait Driver: Send + Sync + 'static {
    /// `hypervisor_type` as os-hypervisors shows it.
    fn hypervisor_type(&self) -> &'static str;
    async fn spawn(&self, vm: &VmSpec) -> Result<(), DriverError>;
    /// Remove the VM; removing one the hypervisor does not know succeeds.
    async fn destroy(&self, id: &str) -> Result<(), DriverError>;
    async fn power_off(&self, id: &str) -> Result<(), DriverError>;
    async fn power_on(&self, id: &str) -> Result<(), DriverError>;
    async fn reboot(&self, id: &str, hard: bool) -> Result<(), DriverError>;
    async fn pause(&self, id: &str) -> Result<(), DriverError>;
    async fn unpause(&self, id: &str) -> Result<(), DriverError>;
    async fn suspend(&self, id: &str) -> Result<(), DriverError>;
    async fn resume(&self, id: &str) -> Result<(), DriverError>;
    /// Receive a VM moved here (resize, cold or live migration, evacuation): it runs here afterwards with
    /// `vm`'s resources, in `power_state`.
    async fn migrate_in(&self, vm: &VmSpec, power_state: i32) -> Result<(), DriverError>;
    async fn rebuild(&self, vm: &VmSpec) -> Result<(), DriverError>;
    /// Prepare a snapshot of the VM's disk (the bytes come from its image in the fake driver).
    async fn snapshot(&self, id: &str) -> Result<(), DriverError>;
    async fn attach_volume(
        &self,
        id: &str,
        volume_id: &str,
        device: &str,
    ) -> Result<(), DriverError>;
    async fn detach_volume(&self, id: &str, volume_id: &str) -> Result<(), DriverError>;
    /// Hot-plug a Neutron port (os-interface attach).
    async fn plug_port(&self, id: &str, port_id: &str) -> Result<(), DriverError>;
    async fn unplug_port(&self, id: &str, port_id: &str) -> Result<(), DriverError>;
    async fn console_output(&self, id: &str, length: Option<usize>) -> Result<String, DriverError>;
    /// The power state the hypervisor reports, `None` for an unknown VM.
    fn power_state(&self, id: &str) -> Option<i32>;
    /// Every VM the hypervisor runs.
    fn instances(&self) -> Vec<String>;
    fn stats(&self) -> HostStats;
}

#[derive(Debug, Clone)]
struct FakeVm {
    spec: VmSpec,
    power_state: i32,
    started: Instant,
    console: Vec<String>,
    volumes: BTreeMap<String, String>,
}

/// The deterministic in-memory hypervisor.
pub struct FakeDriver {
    host: String,
    stats: HostStats,
    latency: Duration,
    vms: Mutex<HashMap<String, FakeVm>>,
}

impl FakeDriver {
    pub fn new(host: &str, stats: HostStats, latency: Duration) -> Self {
        FakeDriver {
            host: host.to_string(),
            stats,
            latency,
            vms: Mutex::new(HashMap::new()),
        }
    }

    async fn wait(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }

    fn fails(&self, id: &str, op: &str) -> bool {
        self.vms
            .lock()
            .get(id)
            .is_some_and(|vm| fails(&vm.spec, op))
    }

    /// Change a known VM's power state (after the injected faults are checked).
    async fn transition(
        &self,
        id: &str,
        op: &str,
        from: &[i32],
        to: i32,
    ) -> Result<(), DriverError> {
        self.wait().await;
        if self.fails(id, op) {
            return Err(DriverError::Failed(format!(
                "fake driver: injected failure of {op}"
            )));
        }
        let mut vms = self.vms.lock();
        let vm = vms
            .get_mut(id)
            .ok_or_else(|| DriverError::NotFound(id.to_string()))?;
        if !from.is_empty() && !from.contains(&vm.power_state) {
            return Err(DriverError::Failed(format!(
                "fake driver: cannot {op} a VM in power state {}",
                vm.power_state
            )));
        }
        vm.power_state = to;
        if to == power::RUNNING {
            vm.started = Instant::now();
        }
        vm.console.push(format!("[fake] {op} -> power state {to}"));
        Ok(())
    }

    fn boot_console(&self, spec: &VmSpec) -> Vec<String> {
        let mut lines = vec![
            format!(
                "[    0.000000] Linux version 6.1.0-fake (strata@{})",
                self.host
            ),
            format!(
                "[    0.000000] Command line: console=ttyS0 root=/dev/vda1 ({} vCPU, {} MB)",
                spec.vcpus, spec.ram_mb
            ),
        ];
        lines.extend(spec.volumes.iter().map(|(volume, device)| {
            format!("[    0.500000] virtio_blk {device}: volume {volume}")
        }));
        lines.extend(
            spec.ports
                .iter()
                .enumerate()
                .map(|(i, port)| format!("[    0.600000] virtio_net eth{i}: port {port}")),
        );
        lines.push("[    1.234567] cloud-init: running modules for init".to_string());
        lines.push(format!("{} login: ", spec.name));
        lines
    }
}

fn fails(spec: &VmSpec, op: &str) -> bool {
    spec.metadata
        .get("fake:fail")
        .is_some_and(|v| v.split(',').any(|x| x.trim() == op))
}

fn millis(spec: &VmSpec, key: &str) -> Option<Duration> {
    spec.metadata
        .get(key)
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
}

#[async_trait::async_trait]
impl Driver for FakeDriver {
    fn hypervisor_type(&self) -> &'static str {
        "fake"
    }

    async fn spawn(&self, vm: &VmSpec) -> Result<(), DriverError> {
        self.wait().await;
        if let Some(d) = millis(vm, "fake:spawn_delay_ms") {
            tokio::time::sleep(d).await;
        }
        if fails(vm, "spawn") {
            return Err(DriverError::Failed(
                "fake driver: injected failure of spawn".into(),
            ));
        }
        let console = self.boot_console(vm);
        self.vms.lock().insert(
            vm.id.clone(),
            FakeVm {
                spec: vm.clone(),
                power_state: power::RUNNING,
                started: Instant::now(),
                console,
                volumes: vm.volumes.clone(),
            },
        );
        Ok(())
    }

    async fn destroy(&self, id: &str) -> Result<(), DriverError> {
        self.wait().await;
        if self.fails(id, "destroy") {
            return Err(DriverError::Failed(
                "fake driver: injected failure of destroy".into(),
            ));
        }
        self.vms.lock().remove(id);
        Ok(())
    }

    async fn power_off(&self, id: &str) -> Result<(), DriverError> {
        self.transition(id, "power_off", &[], power::SHUTDOWN).await
    }

    async fn power_on(&self, id: &str) -> Result<(), DriverError> {
        self.transition(id, "power_on", &[], power::RUNNING).await
    }

    async fn reboot(&self, id: &str, hard: bool) -> Result<(), DriverError> {
        let op = "reboot";
        let from: &[i32] = if hard { &[] } else { &[power::RUNNING] };
        self.transition(id, op, from, power::RUNNING).await
    }

    async fn pause(&self, id: &str) -> Result<(), DriverError> {
        self.transition(id, "pause", &[power::RUNNING], power::PAUSED)
            .await
    }

    async fn unpause(&self, id: &str) -> Result<(), DriverError> {
        self.transition(id, "unpause", &[power::PAUSED], power::RUNNING)
            .await
    }

    async fn suspend(&self, id: &str) -> Result<(), DriverError> {
        self.transition(id, "suspend", &[power::RUNNING], power::SUSPENDED)
            .await
    }

    async fn resume(&self, id: &str) -> Result<(), DriverError> {
        self.transition(id, "resume", &[power::SUSPENDED], power::RUNNING)
            .await
    }

    async fn migrate_in(&self, vm: &VmSpec, power_state: i32) -> Result<(), DriverError> {
        self.wait().await;
        if fails(vm, "migrate") {
            return Err(DriverError::Failed(
                "fake driver: injected failure of migrate".into(),
            ));
        }
        let mut console = self.boot_console(vm);
        console.push(format!("[fake] migrated to {}", self.host));
        self.vms.lock().insert(
            vm.id.clone(),
            FakeVm {
                spec: vm.clone(),
                power_state,
                started: Instant::now(),
                console,
                volumes: vm.volumes.clone(),
            },
        );
        Ok(())
    }

    async fn rebuild(&self, vm: &VmSpec) -> Result<(), DriverError> {
        self.wait().await;
        if fails(vm, "rebuild") {
            return Err(DriverError::Failed(
                "fake driver: injected failure of rebuild".into(),
            ));
        }
        let console = self.boot_console(vm);
        self.vms.lock().insert(
            vm.id.clone(),
            FakeVm {
                spec: vm.clone(),
                power_state: power::RUNNING,
                started: Instant::now(),
                console,
                volumes: vm.volumes.clone(),
            },
        );
        Ok(())
    }

    async fn snapshot(&self, id: &str) -> Result<(), DriverError> {
        self.wait().await;
        if self.fails(id, "snapshot") {
            return Err(DriverError::Failed(
                "fake driver: injected failure of snapshot".into(),
            ));
        }
        if !self.vms.lock().contains_key(id) {
            return Err(DriverError::NotFound(id.to_string()));
        }
        Ok(())
    }

    async fn attach_volume(
        &self,
        id: &str,
        volume_id: &str,
        device: &str,
    ) -> Result<(), DriverError> {
        self.wait().await;
        let mut vms = self.vms.lock();
        let vm = vms
            .get_mut(id)
            .ok_or_else(|| DriverError::NotFound(id.to_string()))?;
        vm.volumes.insert(volume_id.to_string(), device.to_string());
        vm.console
            .push(format!("[fake] attached volume {volume_id} at {device}"));
        Ok(())
    }

    async fn detach_volume(&self, id: &str, volume_id: &str) -> Result<(), DriverError> {
        self.wait().await;
        let mut vms = self.vms.lock();
        let vm = vms
            .get_mut(id)
            .ok_or_else(|| DriverError::NotFound(id.to_string()))?;
        if vm.volumes.remove(volume_id).is_some() {
            vm.console
                .push(format!("[fake] detached volume {volume_id}"));
        }
        Ok(())
    }

    async fn plug_port(&self, id: &str, port_id: &str) -> Result<(), DriverError> {
        self.wait().await;
        let mut vms = self.vms.lock();
        let vm = vms
            .get_mut(id)
            .ok_or_else(|| DriverError::NotFound(id.to_string()))?;
        if !vm.spec.ports.iter().any(|p| p == port_id) {
            vm.spec.ports.push(port_id.to_string());
            vm.console.push(format!("[fake] plugged port {port_id}"));
        }
        Ok(())
    }

    async fn unplug_port(&self, id: &str, port_id: &str) -> Result<(), DriverError> {
        self.wait().await;
        let mut vms = self.vms.lock();
        let vm = vms
            .get_mut(id)
            .ok_or_else(|| DriverError::NotFound(id.to_string()))?;
        let before = vm.spec.ports.len();
        vm.spec.ports.retain(|p| p != port_id);
        if vm.spec.ports.len() != before {
            vm.console.push(format!("[fake] unplugged port {port_id}"));
        }
        Ok(())
    }

    async fn console_output(&self, id: &str, length: Option<usize>) -> Result<String, DriverError> {
        let vms = self.vms.lock();
        let vm = vms
            .get(id)
            .ok_or_else(|| DriverError::NotFound(id.to_string()))?;
        let lines = &vm.console;
        let start = length.map_or(0, |n| lines.len().saturating_sub(n));
        Ok(lines[start..].join("\n") + "\n")
    }

    fn power_state(&self, id: &str) -> Option<i32> {
        let mut vms = self.vms.lock();
        let vm = vms.get_mut(id)?;
        // An injected "the guest shut itself down".
        if vm.power_state == power::RUNNING {
            if let Some(after) = millis(&vm.spec, "fake:power_off_after_ms") {
                if vm.started.elapsed() >= after {
                    vm.power_state = power::SHUTDOWN;
                    vm.console.push("[fake] guest powered off".into());
                }
            }
        }
        Some(vm.power_state)
    }

    fn instances(&self) -> Vec<String> {
        self.vms.lock().keys().cloned().collect()
    }

    fn stats(&self) -> HostStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn driver() -> FakeDriver {
        FakeDriver::new(
            "h",
            HostStats {
                vcpus: 4,
                ram_mb: 1024,
                disk_gb: 10,
            },
            Duration::ZERO,
        )
    }

    fn vm(meta: &[(&str, &str)]) -> VmSpec {
        VmSpec {
            id: "vm1".into(),
            name: "vm".into(),
            metadata: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn power_operations_follow_the_vm() {
        let d = driver();
        d.spawn(&vm(&[])).await.unwrap();
        assert_eq!(d.power_state("vm1"), Some(power::RUNNING));
        d.pause("vm1").await.unwrap();
        assert_eq!(d.power_state("vm1"), Some(power::PAUSED));
        assert!(
            d.suspend("vm1").await.is_err(),
            "a paused VM cannot suspend"
        );
        d.unpause("vm1").await.unwrap();
        d.power_off("vm1").await.unwrap();
        assert_eq!(d.power_state("vm1"), Some(power::SHUTDOWN));
        d.reboot("vm1", true).await.unwrap();
        assert_eq!(d.power_state("vm1"), Some(power::RUNNING));
        assert!(d
            .console_output("vm1", Some(1))
            .await
            .unwrap()
            .contains("reboot"));
        d.destroy("vm1").await.unwrap();
        assert_eq!(d.power_state("vm1"), None);
    }

    #[tokio::test]
    async fn faults_are_injected_through_metadata() {
        let d = driver();
        assert!(d.spawn(&vm(&[("fake:fail", "spawn")])).await.is_err());
        d.spawn(&vm(&[
            ("fake:fail", "reboot"),
            ("fake:power_off_after_ms", "0"),
        ]))
        .await
        .unwrap();
        assert_eq!(d.power_state("vm1"), Some(power::SHUTDOWN));
        assert!(d.reboot("vm1", true).await.is_err());
    }
}
