/* net.h: interconnect counters read right before and right after a timed
 * region, and their deltas.
 *
 * Sources, each optional (what is not there is simply not listed):
 * - <root>/class/net/<if>/statistics, in bytes and packets: tx_bytes,
 *   rx_bytes, tx_packets, rx_packets; errors = rx_errors + tx_errors;
 *   drops = rx_dropped + tx_dropped. 64-bit on 64-bit kernels.
 * - <root>/class/infiniband/<dev>/ports/<n>, listed as "<dev>:<n>".
 *   port_xmit_data and port_rcv_data count 4-byte words: bytes = value * 4.
 *   port_xmit_packets, port_rcv_packets; errors = symbol_error +
 *   port_rcv_errors + port_rcv_remote_physical_errors +
 *   local_link_integrity_errors + excessive_buffer_overrun_errors +
 *   port_xmit_constraint_errors + port_rcv_constraint_errors + link_downed +
 *   link_error_recovery; drops = port_xmit_discards + VL15_dropped.
 *   The four data and packet counters come from counters_ext/port_*_64
 *   (64-bit) where that directory exists (older OFED drivers), else from
 *   counters/, which the kernel (4.5 and later) fills from the 64-bit
 *   extended PMA counters when the HCA has them, from 32-bit ones
 *   otherwise. hw_counters/ is not read: its names differ per driver, and
 *   mlx5's count protocol events, not data.
 * - NVLink through NVML (dlopen of libnvidia-ml.so.1; no NVML header),
 *   listed as "gpu<i>:nvlink": NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX and _RX
 *   summed over the GPU's links count KiB: bytes = value * 1024. NVML has no
 *   packet, error or drop counters for them. Read only with the default
 *   root, since NVML sees the real devices whatever the root. When the
 *   library, one of its calls or nvmlInit fails, the snapshot's note says
 *   so; a GPU that supports neither field (no NVLink) is not listed.
 *   nvmlInit takes milliseconds, or seconds without persistence mode, on
 *   every snapshot.
 *
 * Kinds: "loopback" (net type 772); "virtual" (a net device without a
 * device link: veth, bridge, bond, vlan, ifb, tun); "ethernet" (type 1, and
 * an RDMA port whose link_layer is Ethernet, i.e. RoCE); "infiniband"
 * (type 32, i.e. IPoIB, and InfiniBand ports); "nvlink"; "other" (a
 * physical net device of another type).
 *
 * A delta is b - a for each counter, scaled to bytes as above, summed into
 * its field. A field is null, with "<field>_reason" beside it, when one of
 * its counters
 * - is unreadable or not a decimal number in either snapshot;
 * - decreased: a reset, or a wrap of a 32-bit counter, whose number of
 *   wraps cannot be known, so no guess is made;
 * - sits at the value where a saturating InfiniBand counter stops (2^32-1
 *   for 32-bit data and packet counters; 2^16-1, 2^8-1 or 2^4-1 for the
 *   error counters, as wide as the IBA PortCounters attribute makes them);
 * or when the source has no counter for it (NVLink packets, errors and
 * drops, an absent file). A counter file absent from both snapshots is
 * left out of its sum. The first reason of an unknown field is repeated as
 * the interface's "note". An interface in one snapshot only is listed with
 * every field null and a note.
 *
 * Left out unless include_idle: loopback (host-local traffic, not
 * interconnect) and interfaces whose deltas are all known and zero.
 *
 * Bounds for hostile trees: at most MB_NET_MAX_IF interfaces (the rest are
 * counted in the note), names of MB_NET_NAME_MAX bytes or more skipped and
 * counted, each counter read with one open/read/close of at most 23 bytes
 * (non-blocking, so a FIFO cannot hang a snapshot), the snapshot one
 * allocation of fixed size. Not thread-safe (strerror, dlerror).
 */
#ifndef MB_NET_H
#define MB_NET_H

#include <cjson/cJSON.h>

#include "../../harness/mb.h"

#define MB_NET_MAX_IF 256
#define MB_NET_NAME_MAX 80 /* with the NUL: an IB device name (64), ':', a port */

typedef struct mb_net_snap mb_net_snap; /* opaque: one reading of every counter */

/* Read every interface's counters under root (NULL: "/sys", and NVLink
 * through NVML). Never fails because a counter is missing; MB_ERR_NOMEM
 * only. *out is the caller's, to free with mb_net_snap_free. */
int mb_net_snapshot(const char *root, mb_net_snap **out) MB_MUST_CHECK;
/* Free a snapshot; NULL is fine. */
void mb_net_snap_free(mb_net_snap *s);

/* What the snapshot could not see, as one line, "" when nothing: a class
 * directory it could not list, NVLink not read and why, interfaces past
 * MB_NET_MAX_IF or with names too long. Owned by s; "" for NULL. */
const char *mb_net_snap_note(const mb_net_snap *s);

/* The deltas from a to b as a JSON array (caller deletes; NULL when out of
 * memory), one object per interface in name order:
 * {"name", "kind", "counters", "tx_bytes", "rx_bytes", "tx_packets",
 *  "rx_packets", "errors", "drops", "note"?}, bytes and counts as exact
 * integers, null with "<field>_reason" where unknown; "counters" as in
 * mb_net_inventory_json. A NULL snapshot reads as one without interfaces.
 * include_idle: also loopback and interfaces whose deltas are all zero. */
cJSON *mb_net_delta_json(const mb_net_snap *a, const mb_net_snap *b, int include_idle);

/* Total tx and rx bytes from a to b, to compare with the application's byte
 * count: the sum of the known byte deltas of the interfaces on a wire, that
 * is all but loopback, virtual ones (they count again what a physical port
 * carries, or traffic that stays in the host) and IPoIB net devices (their
 * traffic is in their InfiniBand port's counters). NAN when none of them
 * has a known delta. */
void mb_net_delta_totals(const mb_net_snap *a, const mb_net_snap *b, double *tx_bytes,
			 double *rx_bytes);

/* The interfaces in s, for `moebench info` (caller deletes; NULL when out of
 * memory): [{"name", "kind", "counters"}], counters being one of "sysfs net
 * statistics", "infiniband port counters", "infiniband port counters_ext",
 * "nvml nvlink throughput". */
cJSON *mb_net_inventory_json(const mb_net_snap *s);

#endif
