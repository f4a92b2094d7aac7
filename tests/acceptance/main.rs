//! Strata's black-box acceptance tests, in one binary: each module drives the real `strata` binary over
//! HTTP and through the real OpenStack clients (`openstack`, openstacksdk, swiftclient) for one service or
//! concern, with the shared helpers in `common`. One binary links the whole stack once instead of once per
//! file. Run one module with `scripts/test.sh --test acceptance <module>::`.

mod common;

mod audit_cli;
mod audit_http;
mod audit_stream_http;
mod bench_network;
mod bench_object;
mod bench_stream;
mod bench_volume;
mod compute_admin_cli;
mod compute_admin_http;
mod compute_cli;
mod compute_http;
mod compute_network_cli;
mod compute_network_http;
mod compute_servers_cli;
mod compute_servers_http;
mod compute_soak_http;
mod compute_usage_cli;
mod compute_usage_http;
mod compute_volumes_cli;
mod compute_volumes_http;
mod durability;
mod identity_cli;
mod identity_http;
mod image_cli;
mod image_http;
mod input_probe_http;
mod log_faults_http;
mod network_cli;
mod network_http;
mod network_l3_cli;
mod network_l3_http;
mod network_secgroup_http;
mod object_cli;
mod object_http;
mod object_integration_http;
mod object_large_http;
mod policy_matrix_http;
mod volume_backup_cli;
mod volume_backup_http;
mod volume_cli;
mod volume_http;
