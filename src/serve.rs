//! `strata serve`: open the log, start the actor runtime and projections, bind the APIs, bootstrap identity
//! and the catalog, write clouds.yaml, then serve until stopped.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use std::time::Duration;
use strata_actors::image::store::{FileStore, ImageStore, ImageStores};
use strata_actors::{Runtime, RuntimeConfig};
use strata_api::audit::Audit;
use strata_api::auth::{write_private, TokenService};
use strata_api::compute::Compute;
use strata_api::identity::bootstrap::{bootstrap, CatalogEntry, DEFAULT_DOMAIN, SERVICE_PROJECT};
use strata_api::identity::Identity;
use strata_api::image::{ImageQuota, Images};
use strata_api::network::{bootstrap_public_network, Networks, PublicNetwork};
use strata_api::object::ObjectStorage;
use strata_api::volume::Volumes;
use strata_api::{Ports, Services};
use strata_compute::{Engine, EngineConfig, FakeHostSpec};
use strata_events::fault::FaultyLog;
use strata_events::{EventLog, RocksLog, RocksOptions};
use strata_object::backup_objects::SwiftBackups;
use strata_object::blob::BlobStore;
use strata_object::image_store::SwiftImageStore;
use strata_object::ObjectService;
use strata_projections::audit::AuditIndex;
use strata_projections::compute::ComputeView;
use strata_projections::identity::IdentityView;
use strata_projections::image::ImageView;
use strata_projections::network::NetworkView;
use strata_projections::object::ObjectView;
use strata_projections::volume::VolumeView;
use strata_projections::Live;
use strata_volume::backup_target::BackupObjectStore;
use strata_volume::{BackendSpec, Engine as VolumeEngine, EngineConfig as VolumeEngineConfig};

use crate::config::{ServeArgs, ServeConfig};

pub fn log_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("log")
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = args.resolve()?;
    actix_web::rt::System::new().block_on(serve(config))?;
    Ok(ExitCode::SUCCESS)
}

/// The admin password: the flag (remembered in the data dir), else the remembered one, else a new one.
fn admin_password(config: &ServeConfig) -> anyhow::Result<(String, bool)> {
    let file = config.data_dir.join("admin-password");
    if let Some(pw) = &config.admin_password {
        if pw.is_empty() {
            anyhow::bail!("--admin-password must not be empty");
        }
        write_private(&file, pw.as_bytes())
            .with_context(|| format!("writing {}", file.display()))?;
        return Ok((pw.clone(), false));
    }
    match std::fs::read_to_string(&file) {
        Ok(pw) if !pw.trim().is_empty() => Ok((pw.trim().to_string(), false)),
        _ => {
            use rand::Rng;
            let pw: String = rand::thread_rng()
                .sample_iter(&rand::distributions::Alphanumeric)
                .take(24)
                .map(char::from)
                .collect();
            write_private(&file, pw.as_bytes())
                .with_context(|| format!("writing {}", file.display()))?;
            Ok((pw, true))
        }
    }
}

/// The address clients should use for a bound socket (a wildcard bind is reached through loopback).
fn public_host(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port()).to_string()
}

/// Write (or update) clouds.yaml so that `OS_CLOUD=strata openstack ...` works. Other clouds in the file stay.
fn write_clouds_yaml(
    path: &Path,
    auth_url: &str,
    password: &str,
    region: &str,
) -> anyhow::Result<()> {
    let mut doc: serde_yaml::Value = match std::fs::read_to_string(path) {
        Ok(text) => serde_yaml::from_str(&text).unwrap_or(serde_yaml::Value::Null),
        Err(_) => serde_yaml::Value::Null,
    };
    if !doc.is_mapping() {
        doc = serde_yaml::Value::Mapping(Default::default());
    }
    let cloud: serde_yaml::Value = serde_yaml::to_value(serde_json::json!({
        "auth": {
            "auth_url": auth_url,
            "username": "admin",
            "password": password,
            "project_name": "admin",
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
        "region_name": region,
        "interface": "public",
        "identity_api_version": 3,
    }))?;
    let clouds = doc
        .as_mapping_mut()
        .and_then(|m| {
            if !m.get("clouds").is_some_and(|c| c.is_mapping()) {
                m.insert(
                    "clouds".into(),
                    serde_yaml::Value::Mapping(Default::default()),
                );
            }
            m.get_mut("clouds")
        })
        .and_then(|c| c.as_mapping_mut())
        .context("clouds.yaml structure")?;
    clouds.insert("strata".into(), cloud);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    write_private(path, serde_yaml::to_string(&doc)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

fn volume_config(config: &ServeConfig) -> VolumeEngineConfig {
    let mut c = VolumeEngineConfig::new(config.data_dir.join("volumes"));
    c.backends = config
        .volume_backends
        .iter()
        .map(|(name, driver, size_gb, format)| BackendSpec {
            name: name.clone(),
            driver: driver.clone(),
            total_gb: *size_gb,
            format: format.clone(),
        })
        .collect();
    c.heartbeat_interval = Duration::from_secs(config.heartbeat_interval);
    c.service_down_time = Duration::from_secs(config.service_down_time);
    c
}

fn engine_config(config: &ServeConfig) -> EngineConfig {
    let (vcpus, ram_mb, disk_gb) = config.fake_host_spec;
    let mut c = EngineConfig::new(config.data_dir.join("compute"));
    c.hosts = FakeHostSpec::numbered(config.fake_hosts, vcpus, ram_mb, disk_gb);
    c.driver_latency = Duration::from_millis(config.fake_driver_latency_ms);
    c.build_timeout = Duration::from_secs(config.build_timeout);
    c.heartbeat_interval = Duration::from_secs(config.heartbeat_interval);
    c.power_sync_interval = Duration::from_secs(config.power_sync_interval);
    c.scheduler.service_down_time = Duration::from_secs(config.service_down_time);
    c.scheduler.host_subset_size = config.host_subset_size.max(1);
    c
}

/// Glance's stores: `file` (under the data dir) and `swift` (objects in the `service` project's account),
/// the default as configured.
fn image_stores(
    config: &ServeConfig,
    identity: &actix_web::web::Data<Identity>,
    objects: &Arc<ObjectService>,
) -> anyhow::Result<ImageStores> {
    let file = FileStore::new(config.data_dir.clone()).context("opening the image store")?;
    let identity = identity.clone();
    let service_account = Arc::new(move || {
        identity
            .view
            .snapshot()
            .project_by_name(DEFAULT_DOMAIN, SERVICE_PROJECT)
            .map(|p| p.id.clone())
    });
    let swift = SwiftImageStore::new(objects.clone(), service_account);
    let mut stores = ImageStores::new(Arc::new(file), "Files under the Strata data directory")
        .with(
            Arc::new(swift),
            "Objects in Strata's object storage (the service project's account)",
        );
    stores
        .set_default(&config.image_default_store)
        .map_err(anyhow::Error::msg)?;
    Ok(stores)
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let rocks: Arc<dyn EventLog> = Arc::new(
        RocksLog::open(log_dir(&config.data_dir), RocksOptions::default())
            .with_context(|| format!("opening the event log in {}", config.data_dir.display()))?,
    );
    // Tests make reads of the log fail once the cloud is up (`--debug-log-read-faults`).
    let faulty =
        (config.debug_log_read_faults > 0).then(|| Arc::new(FaultyLog::new(rocks.clone())));
    let log: Arc<dyn EventLog> = match &faulty {
        Some(f) => f.clone(),
        None => rocks,
    };
    let head = log.head().await?;
    tracing::info!(position = head.position, hash = %hex::encode(head.hash), "event log opened");
    let runtime = Runtime::start(log.clone(), RuntimeConfig::default());
    let view = Live::<IdentityView>::start(log.clone(), Default::default()).await?;
    let tokens = TokenService::load_or_create(
        &config.data_dir.join("keys").join("token.key"),
        chrono::Duration::seconds(config.token_ttl.clamp(1, 7 * 24 * 3600) as i64),
    )
    .context("loading the token signing key")?;
    let identity = actix_web::web::Data::new(Identity::new(
        runtime.clone(),
        view,
        tokens,
        config.region.clone(),
    ));
    // Swift: object records are events, bytes are blobs; blobs a crash left unreferenced go before anyone asks.
    let object_view = Live::<ObjectView>::start(log.clone(), Default::default()).await?;
    let blobs = BlobStore::open(&config.data_dir).context("opening the object blob store")?;
    let object_service = Arc::new(ObjectService::new(runtime.clone(), object_view, blobs));
    let swept = object_service
        .sweep()
        .context("sweeping unfinished object uploads")?;
    if swept.temps + swept.orphans > 0 {
        tracing::info!(
            temps = swept.temps,
            orphans = swept.orphans,
            "removed object data no object refers to"
        );
    }
    object_service.start_expirer(Duration::from_secs(1));
    let image_view = Live::<ImageView>::start(log.clone(), Default::default()).await?;
    let quota = ImageQuota {
        images: config.image_quota_count,
        bytes: config.image_quota_bytes,
    };
    let images = actix_web::web::Data::new(Images::new(
        runtime.clone(),
        image_view,
        Arc::new(image_stores(&config, &identity, &object_service)?),
        quota,
    ));
    let compute_view = Live::<ComputeView>::start(log.clone(), Default::default()).await?;
    let engine = Engine::start(
        runtime.clone(),
        compute_view.clone(),
        images.view.clone(),
        images.store.clone() as Arc<dyn ImageStore>,
        engine_config(&config),
    )
    .await
    .context("starting the compute engine")?;
    let volume_view = Live::<VolumeView>::start(log.clone(), Default::default()).await?;
    engine.set_volume_view(volume_view.clone());
    engine.set_snapshot_sink(Arc::new(strata_image::SnapshotStore::new(
        images.clone().into_inner(),
    )));
    let network_view = Live::<NetworkView>::start(log.clone(), Default::default()).await?;
    let network_service = Arc::new(Networks::new(runtime.clone(), network_view));
    let networks = actix_web::web::Data::from(network_service.clone());
    // What a crash left half-done (addresses or quota held for nothing) is given back before anyone asks.
    strata_network::sweep_leftovers(&network_service)
        .await
        .map_err(|e| anyhow::anyhow!("sweeping networking leftovers: {}", e))?;
    engine.set_network(network_service.clone());
    let compute = actix_web::web::Data::new(Compute::new(
        runtime.clone(),
        compute_view,
        images.clone().into_inner(),
        engine.clone(),
        volume_view.clone(),
        networks.clone().into_inner(),
    ));
    let volumes = actix_web::web::Data::new(Volumes::new(
        runtime.clone(),
        volume_view.clone(),
        images.clone().into_inner(),
        Duration::from_secs(config.service_down_time),
    ));
    let volume_engine = VolumeEngine::start(
        runtime.clone(),
        volume_view,
        images.view.clone(),
        images.store.clone() as Arc<dyn ImageStore>,
        VolumeEngineConfig {
            backup_objects: (config.backup_target == "swift")
                .then(|| BackupObjectStore(Arc::new(SwiftBackups::new(object_service.clone())))),
            ..volume_config(&config)
        },
    )
    .await
    .context("starting the volume service")?;
    volume_engine.set_image_sink(Arc::new(strata_image::SnapshotStore::new(
        images.clone().into_inner(),
    )));
    // Router, floating IP and security group requests a crash cut short are given back too.
    strata_network::routers::sweep_l3_leftovers(&network_service)
        .await
        .map_err(|e| anyhow::anyhow!("sweeping router leftovers: {}", e))?;
    // The networking datapath (the fake driver records plumbing) follows the log and reports floating IPs'
    // status.
    strata_network::datapath::Datapath::start(
        network_service.clone(),
        log.clone(),
        Arc::new(strata_actors::network::driver::FakeNetworkDriver::new()),
    )
    .context("starting the network datapath agent")?;
    let objects = actix_web::web::Data::new(ObjectStorage::new(object_service.clone()));
    // The audit API and event streams read the log through the audit index.
    let audit_index = Live::<AuditIndex>::start(log.clone(), Default::default()).await?;
    let audit = actix_web::web::Data::new(Audit::new(log.clone(), audit_index));
    let ports = Ports {
        identity: config.identity_port,
        image: config.image_port,
        compute: config.compute_port,
        volume: config.volume_port,
        network: config.network_port,
        object: config.object_port,
        audit: config.audit_port,
    };
    let services = Services::start(
        identity.clone(),
        images,
        compute,
        volumes,
        networks.clone(),
        objects,
        audit,
        config.bind,
        ports,
        config.workers,
    )
    .with_context(|| format!("binding the APIs on {} ({ports:?})", config.bind))?;
    let identity_url = format!("http://{}/v3", public_host(services.addrs.identity));
    let image_url = format!("http://{}", public_host(services.addrs.image));
    let compute_url = format!("http://{}/v2.1", public_host(services.addrs.compute));
    let volume_url = format!("http://{}/v3", public_host(services.addrs.volume));
    // Neutron's catalog URL has no version: clients append /v2.0.
    let network_url = format!("http://{}", public_host(services.addrs.network));
    // Keystone fills in the project id of each token's scope.
    let object_url = format!(
        "http://{}/v1/AUTH_%(project_id)s",
        public_host(services.addrs.object)
    );
    let audit_url = format!("http://{}/audit/v1", public_host(services.addrs.audit));
    tracing::info!(identity = %identity_url, image = %image_url, "APIs listening");

    let (password, generated) = admin_password(&config)?;
    let catalog = vec![
        CatalogEntry {
            service_type: "identity".into(),
            name: "keystone".into(),
            description: "Strata identity (Keystone v3)".into(),
            url: identity_url.clone(),
        },
        CatalogEntry {
            service_type: "image".into(),
            name: "glance".into(),
            description: "Strata images (Glance v2)".into(),
            url: image_url.clone(),
        },
        CatalogEntry {
            service_type: "compute".into(),
            name: "nova".into(),
            description: "Strata compute (Nova v2.1)".into(),
            url: compute_url.clone(),
        },
        CatalogEntry {
            service_type: "volumev3".into(),
            name: "cinderv3".into(),
            description: "Strata block storage (Cinder v3)".into(),
            url: volume_url.clone(),
        },
        CatalogEntry {
            service_type: "block-storage".into(),
            name: "cinder".into(),
            description: "Strata block storage (Cinder v3)".into(),
            url: volume_url.clone(),
        },
        CatalogEntry {
            service_type: "network".into(),
            name: "neutron".into(),
            description: "Strata networking (Neutron v2.0)".into(),
            url: network_url.clone(),
        },
        CatalogEntry {
            service_type: "object-store".into(),
            name: "swift".into(),
            description: "Strata object storage (Swift v1)".into(),
            url: object_url.clone(),
        },
        CatalogEntry {
            service_type: "audit".into(),
            name: "strata-audit".into(),
            description: "Strata audit API and event streams (/audit/v1, /events/v1)".into(),
            url: audit_url.clone(),
        },
    ];
    let report = bootstrap(&identity, &password, &catalog)
        .await
        .map_err(|e| anyhow::anyhow!("bootstrap: {}", e))?;
    if report.reset_admin_password {
        tracing::warn!("the admin password differed from the one given; it has been reset");
    }
    if let Some(cidr) = &config.public_network_cidr {
        let admin_project = identity
            .view
            .snapshot()
            .project_by_name("default", "admin")
            .map(|p| p.id.clone())
            .context("the admin project after bootstrap")?;
        let public = PublicNetwork {
            name: "public".into(),
            cidr: cidr.clone(),
        };
        bootstrap_public_network(&networks, &admin_project, &public)
            .await
            .map_err(|e| anyhow::anyhow!("making the external network: {}", e))?;
    }
    write_clouds_yaml(
        &config.clouds_yaml,
        &identity_url,
        &password,
        &config.region,
    )?;

    println!("Strata is running. Identity (Keystone v3): {identity_url}  Images (Glance v2): {image_url}  Compute (Nova v2.1): {compute_url}  Block storage (Cinder v3): {volume_url}  Networking (Neutron v2.0): {network_url}  Object storage (Swift v1): {object_url}  Audit: {audit_url}");
    println!(
        "  clouds.yaml: {}  (cloud 'strata')",
        config.clouds_yaml.display()
    );
    println!(
        "  try:  OS_CLIENT_CONFIG_FILE={} OS_CLOUD=strata openstack token issue",
        config.clouds_yaml.display()
    );
    if generated {
        println!(
            "  admin password (generated, shown once; kept in {}): {password}",
            config.data_dir.join("admin-password").display()
        );
    }
    if let Some(f) = &faulty {
        tracing::warn!(
            every = config.debug_log_read_faults,
            "injecting read faults into the event log (--debug-log-read-faults)"
        );
        f.fail_reads_every(config.debug_log_read_faults);
    }
    println!("STRATA READY identity={identity_url} image={image_url} compute={compute_url} volume={volume_url} network={network_url} object={object_url} audit={audit_url}");
    futures::future::try_join_all(services.servers)
        .await
        .context("HTTP server")?;
    engine.shutdown();
    volume_engine.shutdown();
    runtime.shutdown();
    tracing::info!("stopped");
    Ok(())
}
