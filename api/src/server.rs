//! Binding and running the HTTP services: one actix-web server per OpenStack API, each on its own port.

use std::net::{IpAddr, SocketAddr};

use actix_web::{middleware, web, App, HttpServer};

use crate::audit::{self, Audit};
use crate::common::request_id_middleware;
use crate::compute::{self, Compute};
use crate::identity::{self, Identity};
use crate::image::{self, Images};
use crate::network::{self, Networks};
use crate::object::{self, ObjectStorage};
use crate::volume::{self, Volumes};

/// Ports to bind (0 picks a free one).
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub identity: u16,
    pub image: u16,
    pub compute: u16,
    pub volume: u16,
    pub network: u16,
    pub object: u16,
    pub audit: u16,
}

/// Where each service is listening.
#[derive(Debug, Clone)]
pub struct ServiceAddrs {
    pub identity: SocketAddr,
    pub image: SocketAddr,
    pub compute: SocketAddr,
    pub volume: SocketAddr,
    pub network: SocketAddr,
    pub object: SocketAddr,
    pub audit: SocketAddr,
}

/// The running HTTP services.
pub struct Services {
    pub addrs: ServiceAddrs,
    pub servers: Vec<actix_web::dev::Server>,
}

/// Every connection sends without Nagle's delay: a response head and a small body written separately must
/// not wait for the client's delayed ACK (~40 ms per small GET otherwise).
fn no_delay(conn: &dyn std::any::Any, _: &mut actix_web::dev::Extensions) {
    if let Some(sock) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
        if let Err(e) = sock.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    }
}

/// The audit listener's connections: no delay, and the socket kept for dropping slow stream consumers.
fn audit_connection(conn: &dyn std::any::Any, ext: &mut actix_web::dev::Extensions) {
    no_delay(conn, ext);
    audit::streams::on_connect(conn, ext);
}

/// Largest JSON request body any API accepts (image data is streamed, not limited by this).
const MAX_BODY: usize = 1 << 20;

impl Services {
    /// Bind every service and start serving. Identity state is shared with every service (token checks).
    #[allow(clippy::too_many_arguments)] // one state per service, plus where to listen
    pub fn start(
        identity: web::Data<Identity>,
        images: web::Data<Images>,
        compute: web::Data<Compute>,
        volumes: web::Data<Volumes>,
        networks: web::Data<Networks>,
        objects: web::Data<ObjectStorage>,
        audit_data: web::Data<Audit>,
        bind: IpAddr,
        ports: Ports,
        workers: usize,
    ) -> std::io::Result<Self> {
        let id_data = identity.clone();
        let keystone = HttpServer::new(move || {
            App::new()
                .app_data(id_data.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY))
                .wrap(middleware::Compress::default())
                .wrap_fn(request_id_middleware)
                .configure(identity::configure)
        })
        .on_connect(no_delay)
        .workers(workers.max(1))
        .bind((bind, ports.identity))?;
        let identity_addr = keystone
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| std::io::Error::other("identity API bound to no address"))?;

        let id_data = identity.clone();
        // Nova makes boot volumes through Cinder's own request handling.
        let nova_volumes = volumes.clone();
        let nova = HttpServer::new(move || {
            App::new()
                .app_data(id_data.clone())
                .app_data(compute.clone())
                .app_data(nova_volumes.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY))
                .wrap_fn(compute::microversion_middleware)
                .wrap_fn(request_id_middleware)
                .configure(compute::configure)
        })
        .on_connect(no_delay)
        .workers(workers.max(1))
        .bind((bind, ports.compute))?;
        let compute_addr = nova
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| std::io::Error::other("compute API bound to no address"))?;

        let id_data = identity.clone();
        let cinder = HttpServer::new(move || {
            App::new()
                .app_data(id_data.clone())
                .app_data(volumes.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY))
                .wrap_fn(request_id_middleware)
                .configure(volume::configure)
        })
        .on_connect(no_delay)
        .workers(workers.max(1))
        .bind((bind, ports.volume))?;
        let volume_addr = cinder
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| std::io::Error::other("volume API bound to no address"))?;

        let id_data = identity.clone();
        let neutron = HttpServer::new(move || {
            App::new()
                .app_data(id_data.clone())
                .app_data(networks.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY))
                .wrap_fn(request_id_middleware)
                .configure(network::configure)
        })
        .on_connect(no_delay)
        .workers(workers.max(1))
        .bind((bind, ports.network))?;
        let network_addr = neutron
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| std::io::Error::other("network API bound to no address"))?;

        let id_data = identity.clone();
        // Object bodies are streamed, never buffered: the JSON limit does not apply to them.
        let swift = HttpServer::new(move || {
            App::new()
                .app_data(id_data.clone())
                .app_data(objects.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY))
                .wrap_fn(object::trans_id_middleware)
                .wrap_fn(request_id_middleware)
                .configure(object::configure)
        })
        .on_connect(no_delay)
        .workers(workers.max(1))
        .bind((bind, ports.object))?;
        let object_addr = swift
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| std::io::Error::other("object storage API bound to no address"))?;

        let id_data = identity.clone();
        let audit_server = HttpServer::new(move || {
            App::new()
                .app_data(id_data.clone())
                .app_data(audit_data.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY))
                .wrap_fn(request_id_middleware)
                .configure(audit::configure)
        })
        // Event streams shut down the socket of a client that stopped reading.
        .on_connect(audit_connection)
        .workers(workers.max(1))
        .bind((bind, ports.audit))?;
        let audit_addr = audit_server
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| std::io::Error::other("audit API bound to no address"))?;

        let glance = HttpServer::new(move || {
            App::new()
                .app_data(identity.clone())
                .app_data(images.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY))
                .wrap_fn(request_id_middleware)
                .configure(image::configure)
        })
        .on_connect(no_delay)
        .workers(workers.max(1))
        .bind((bind, ports.image))?;
        let image_addr = glance
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| std::io::Error::other("image API bound to no address"))?;

        Ok(Services {
            addrs: ServiceAddrs {
                identity: identity_addr,
                image: image_addr,
                compute: compute_addr,
                volume: volume_addr,
                network: network_addr,
                object: object_addr,
                audit: audit_addr,
            },
            servers: vec![
                keystone.run(),
                glance.run(),
                nova.run(),
                cinder.run(),
                neutron.run(),
                swift.run(),
                audit_server.run(),
            ],
        })
    }
}
