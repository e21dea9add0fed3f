/**
 * Request and response bodies of the Firecracker API calls the driver makes, as defined by
 * Firecracker v1.16.1 (`src/firecracker/swagger/firecracker.yaml`, tag v1.16.1, commit
 * 2038188f). Only the fields the driver may send are typed; Firecracker rejects unknown fields.
 * The derived description the fake Firecracker validates against lives in
 * `test-data/firecracker/firecracker-api.v1.16.1.json`.
 */

/** PUT /machine-config (pre-boot). */
export interface MachineConfig {
  /** 1..32; 1 or even when `smt` is true. */
  vcpu_count: number;
  mem_size_mib: number;
  smt?: boolean;
  track_dirty_pages?: boolean;
  huge_pages?: 'None' | '2M';
}

/** PUT /boot-source (pre-boot). */
export interface BootSource {
  /** Uncompressed ELF vmlinux (x86_64). */
  kernel_image_path: string;
  initrd_path?: string;
  boot_args?: string;
}

/** PUT /drives/{drive_id} (pre-boot). `drive_id` must equal the path id. */
export interface Drive {
  drive_id: string;
  is_root_device: boolean;
  is_read_only?: boolean;
  path_on_host?: string;
  partuuid?: string;
  cache_type?: 'Unsafe' | 'Writeback';
  io_engine?: 'Sync' | 'Async';
}

/** PUT /network-interfaces/{iface_id} (pre-boot). `iface_id` must equal the path id. */
export interface NetworkInterface {
  iface_id: string;
  /** Name of an existing host TAP device (at most 15 bytes). */
  host_dev_name: string;
  /** `aa:bb:cc:dd:ee:ff`. */
  guest_mac?: string;
  mtu?: number;
}

/** PUT /actions. */
export type InstanceActionType = 'InstanceStart' | 'SendCtrlAltDel' | 'FlushMetrics';

/** PUT /logger (pre-boot). */
export interface LoggerConfig {
  log_path?: string;
  level?: 'Error' | 'Warning' | 'Info' | 'Debug' | 'Trace' | 'Off';
  show_level?: boolean;
  show_log_origin?: boolean;
  module?: string;
}

/** PUT /metrics (pre-boot, once). */
export interface MetricsConfig {
  metrics_path: string;
}

/** PUT /mmds/config (pre-boot; the interfaces must already exist). */
export interface MmdsConfig {
  version?: 'V1' | 'V2';
  network_interfaces: string[];
  ipv4_address?: string;
  imds_compat?: boolean;
}

/** GET / */
export interface InstanceInfo {
  id: string;
  state: 'Not started' | 'Running' | 'Paused';
  vmm_version: string;
  app_name: string;
}

/** PATCH /vm (post-boot). */
export interface VmStateUpdate {
  state: 'Paused' | 'Resumed';
}
