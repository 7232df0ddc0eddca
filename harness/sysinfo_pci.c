/* sysinfo_pci.c: the PCI side of the host inventory: accelerators and NICs,
 * identified by PCI vendor and class (Debian's hwloc has no CUDA, NVML or
 * Ascend backends: ecosystem.md §3), with their links read from sysfs.
 */
#include "mb.h"

#include <dirent.h>
#include <errno.h>
#include <ifaddrs.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "result.h"
#include "sysinfo_int.h"

/* ---- hwloc: PCI identity and locality ---- */

static const char *const si_pci_field_keys[] = {
	"pci_bus_id", "vendor_id", "device_id", "class_id", "pcie_link_speed", "pcie_link_width",
};

/* The negotiated link as the kernel shows it. sysfs rather than hwloc's
 * linkspeed: hwloc takes that from config space past the 64 bytes that
 * non-root users may read. Inside a VM these are the emulated values. */
static int si_pcie_link(cJSON *o, const char *bus)
{
	char path[PATH_MAX], buf[64], why[PATH_MAX + 96];
	int e, rc;
	snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/current_link_speed", bus);
	if ((e = mb_si_read_line(path, buf, sizeof buf)) != 0) {
		snprintf(why, sizeof why, "%s: %s", path, strerror(-e));
		rc = mb_si_null(o, "pcie_link_speed", why);
	} else if (!*mb_si_trim(buf) || strncmp(mb_si_trim(buf), "Unknown", 7) == 0) {
		snprintf(why, sizeof why, "%s reads \"%s\"", path, mb_si_trim(buf));
		rc = mb_si_null(o, "pcie_link_speed", why);
	} else {
		rc = mb_si_str(o, "pcie_link_speed", mb_si_trim(buf), NULL);
	}
	snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/current_link_width", bus);
	return rc | mb_si_sys_num(o, "pcie_link_width", path, 1);
}

/* The PCI identity of p, or every field null with why when p is NULL. */
static int si_pci_fields(cJSON *o, hwloc_obj_t p, const char *why)
{
	char bus[32], ven[8], dev[8], cls[8];
	struct hwloc_pcidev_attr_s *a;
	int rc = 0;

	if (!p) {
		for (size_t i = 0; i < MB_ARRAY_LEN(si_pci_field_keys); i++)
			rc |= mb_si_null(o, si_pci_field_keys[i], why);
		return rc;
	}
	a = &p->attr->pcidev;
	snprintf(bus, sizeof bus, "%04x:%02x:%02x.%x", (unsigned)a->domain, a->bus, a->dev, a->func);
	snprintf(ven, sizeof ven, "0x%04x", a->vendor_id);
	snprintf(dev, sizeof dev, "0x%04x", a->device_id);
	snprintf(cls, sizeof cls, "0x%04x", a->class_id);
	rc |= mb_si_str(o, "pci_bus_id", bus, NULL);
	rc |= mb_si_str(o, "vendor_id", ven, NULL);
	rc |= mb_si_str(o, "device_id", dev, NULL);
	rc |= mb_si_str(o, "class_id", cls, NULL);
	return rc | si_pcie_link(o, bus);
}

/* NUMA nodes (OS indexes) of the first non-I/O ancestor of io, and its type. */
static int si_locality(cJSON *o, hwloc_topology_t t, hwloc_obj_t io)
{
	hwloc_obj_t anc = hwloc_get_non_io_ancestor_obj(t, io);
	cJSON *arr;
	unsigned i;
	int rc = 0;

	if (!anc || !anc->nodeset || hwloc_bitmap_weight(anc->nodeset) <= 0) {
		rc |= mb_si_null(o, "locality", "hwloc found no non-I/O ancestor with a nodeset");
		return rc | mb_si_null(o, "numa_nodes", "hwloc found no non-I/O ancestor with a nodeset");
	}
	rc |= mb_si_str(o, "locality", hwloc_obj_type_string(anc->type), NULL);
	arr = cJSON_CreateArray();
	if (!arr)
		return MB_ERR_NOMEM;
	hwloc_bitmap_foreach_begin(i, anc->nodeset)
		if (!mb_json_push_num(arr, i))
			rc = MB_ERR_NOMEM;
	hwloc_bitmap_foreach_end();
	return mb_si_attach(o, "numa_nodes", arr, rc);
}

/* Names of the OS devices under a PCI device ("card1", "nvme0n1", ...). */
static cJSON *si_osdev_names(hwloc_obj_t p)
{
	cJSON *arr = cJSON_CreateArray();
	for (hwloc_obj_t c = p->io_first_child; arr && c; c = c->next_sibling) {
		cJSON *s;
		if (c->type != HWLOC_OBJ_OS_DEVICE || !c->name)
			continue;
		s = cJSON_CreateString(c->name);
		if (!s || !cJSON_AddItemToArray(arr, s)) {
			cJSON_Delete(s);
			cJSON_Delete(arr);
			return NULL;
		}
	}
	return arr;
}

/* ---- accelerators ---- */

/* The vendor name if this PCI function is an accelerator, else NULL. Display
 * (0x03) and processing-accelerator (0x12) classes only, so that the HDMI
 * audio function of a GPU, an NVSwitch bridge, a Huawei NIC or RAID card and
 * the Huawei BMC's VGA controller (19e5:1711, class 0x0300) are not counted. */
static const char *si_accel_vendor(const struct hwloc_pcidev_attr_s *a)
{
	unsigned cls = a->class_id >> 8;
	switch (a->vendor_id) {
	case 0x10de: return cls == 0x03 || cls == 0x12 ? "nvidia" : NULL;
	case 0x1002: return cls == 0x03 || cls == 0x12 ? "amd" : NULL;
	case 0x19e5: return cls == 0x12 ? "huawei" : NULL;
	case 0x8086: return cls == 0x12 ? "intel" : NULL;
	default: return NULL;
	}
}

static int si_accel_one(cJSON *arr, hwloc_topology_t t, hwloc_obj_t p, const char *vendor)
{
	cJSON *o = mb_si_push_obj(arr);
	int rc;
	if (!o)
		return MB_ERR_NOMEM;
	rc = mb_si_str(o, "vendor", vendor, NULL);
	rc |= si_pci_fields(o, p, NULL);
	rc |= si_locality(o, t, p);
	rc |= mb_si_item(o, "os_devices", si_osdev_names(p));
	return rc;
}

int mb_si_accelerators(cJSON *o, hwloc_topology_t t, const char *why)
{
	cJSON *arr;
	int rc = 0;
	if (!t)
		return mb_si_null(o, "accelerators", why);
	if (hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PCI_DEVICE) <= 0)
		return mb_si_null(o, "accelerators", "hwloc found no PCI devices");
	arr = cJSON_CreateArray();
	if (!arr)
		return MB_ERR_NOMEM;
	for (hwloc_obj_t p = NULL; !rc && (p = hwloc_get_next_pcidev(t, p));) {
		const char *vendor = si_accel_vendor(&p->attr->pcidev);
		if (vendor)
			rc = si_accel_one(arr, t, p, vendor);
	}
	return mb_si_attach(o, "accelerators", arr, rc);
}

/* ---- NICs ---- */

/* A device name that is safe to put into a /sys path. */
int mb_si_safe_name(const char *s)
{
	return s && *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* Link layer from /sys/class/net/<dev>/type (ARPHRD_* in if_arp.h). */
static int si_link_type(cJSON *o, const char *dev)
{
	char path[PATH_MAX], buf[32], name[32], why[PATH_MAX + 64];
	int e;
	long v;
	snprintf(path, sizeof path, "/sys/class/net/%s/type", dev);
	if ((e = mb_si_read_line(path, buf, sizeof buf)) != 0) {
		snprintf(why, sizeof why, "%s: %s", path, strerror(-e));
		return mb_si_null(o, "link_type", why);
	}
	v = strtol(buf, NULL, 10);
	if (v == 1)
		return mb_si_str(o, "link_type", "ethernet", NULL);
	if (v == 32)
		return mb_si_str(o, "link_type", "infiniband", NULL);
	snprintf(name, sizeof name, "arphrd %ld", v);
	return mb_si_str(o, "link_type", name, NULL);
}

/* Which address families are configured on dev; never the addresses. */
static int si_addr_families(cJSON *o, const char *dev)
{
	struct ifaddrs *list, *a;
	int v4 = 0, v6 = 0, ok = 1;
	cJSON *arr;
	char why[96];
	if (getifaddrs(&list) != 0) {
		snprintf(why, sizeof why, "getifaddrs: %s", strerror(errno));
		return mb_si_null(o, "address_families", why);
	}
	for (a = list; a; a = a->ifa_next) {
		if (!a->ifa_addr || !a->ifa_name || strcmp(a->ifa_name, dev) != 0)
			continue;
		v4 |= a->ifa_addr->sa_family == AF_INET;
		v6 |= a->ifa_addr->sa_family == AF_INET6;
	}
	freeifaddrs(list);
	arr = cJSON_CreateArray();
	if (arr && v4)
		ok = cJSON_AddItemToArray(arr, cJSON_CreateString("ipv4"));
	if (arr && v6 && ok)
		ok = cJSON_AddItemToArray(arr, cJSON_CreateString("ipv6"));
	return mb_si_attach(o, "address_families", arr, ok ? 0 : MB_ERR_NOMEM);
}

static int si_netdev(cJSON *o, const char *dev)
{
	char path[PATH_MAX];
	int rc;
	snprintf(path, sizeof path, "/sys/class/net/%s/speed", dev);
	rc = mb_si_sys_num(o, "speed_mbps", path, 1);
	snprintf(path, sizeof path, "/sys/class/net/%s/mtu", dev);
	rc |= mb_si_sys_num(o, "mtu", path, 1);
	rc |= si_link_type(o, dev);
	rc |= si_addr_families(o, dev);
	return rc;
}

static int si_port_cmp(const void *a, const void *b)
{
	const long *x = a, *y = b;
	return (*x > *y) - (*x < *y);
}

/* state, rate and link layer of each port of an RDMA device, by number. */
static int si_ib_ports(cJSON *o, const char *dev)
{
	char dir[PATH_MAX], path[PATH_MAX + 32], why[PATH_MAX + 64];
	long ports[64];
	size_t n = 0;
	struct dirent *d;
	cJSON *arr;
	int rc = 0;
	DIR *dp;

	snprintf(dir, sizeof dir, "/sys/class/infiniband/%s/ports", dev);
	if (!(dp = opendir(dir))) {
		snprintf(why, sizeof why, "%s: %s", dir, strerror(errno));
		return mb_si_null(o, "ports", why);
	}
	while ((d = readdir(dp)) && n < MB_ARRAY_LEN(ports)) {
		char *end;
		long p = strtol(d->d_name, &end, 10);
		if (end != d->d_name && *end == '\0' && p > 0)
			ports[n++] = p;
	}
	closedir(dp);
	qsort(ports, n, sizeof ports[0], si_port_cmp);
	if (!(arr = cJSON_CreateArray()))
		return MB_ERR_NOMEM;
	for (size_t i = 0; i < n && !rc; i++) {
		cJSON *p = mb_si_push_obj(arr);
		if (!p) {
			rc = MB_ERR_NOMEM;
			break;
		}
		rc |= mb_si_num(p, "port", (double)ports[i]);
		snprintf(path, sizeof path, "%s/%ld/state", dir, ports[i]);
		rc |= mb_si_sys_str(p, "state", path);
		snprintf(path, sizeof path, "%s/%ld/rate", dir, ports[i]);
		rc |= mb_si_sys_str(p, "rate", path);
		snprintf(path, sizeof path, "%s/%ld/link_layer", dir, ports[i]);
		rc |= mb_si_sys_str(p, "link_layer", path);
	}
	return mb_si_attach(o, "ports", arr, rc);
}

static int si_nic_osdev(cJSON *arr, hwloc_topology_t t, hwloc_obj_t os)
{
	int net = os->attr->osdev.type == HWLOC_OBJ_OSDEV_NETWORK;
	hwloc_obj_t pci = os->parent && os->parent->type == HWLOC_OBJ_PCI_DEVICE ? os->parent : NULL;
	cJSON *o = mb_si_push_obj(arr);
	int rc;

	if (!o)
		return MB_ERR_NOMEM;
	rc = mb_si_str(o, "name", os->name, "hwloc gave the OS device no name");
	rc |= mb_si_str(o, "kind", net ? "network" : "openfabrics", NULL);
	rc |= si_pci_fields(o, pci, "not under a PCI device");
	rc |= si_locality(o, t, os);
	if (!mb_si_safe_name(os->name))
		return rc | mb_si_null(o, "speed_mbps", "no usable device name");
	if (net)
		return rc | si_netdev(o, os->name);
	rc |= mb_si_null(o, "speed_mbps", "an RDMA device has per-port rates: see ports");
	return rc | si_ib_ports(o, os->name);
}

static int si_has_net_osdev(hwloc_obj_t p)
{
	for (hwloc_obj_t c = p->io_first_child; c; c = c->next_sibling)
		if (c->type == HWLOC_OBJ_OS_DEVICE && (c->attr->osdev.type == HWLOC_OBJ_OSDEV_NETWORK ||
						       c->attr->osdev.type == HWLOC_OBJ_OSDEV_OPENFABRICS))
			return 1;
	return 0;
}

/* A network-class PCI function that the OS shows no device for. */
static int si_nic_bare_pci(cJSON *arr, hwloc_topology_t t, hwloc_obj_t p)
{
	static const char why[] = "no network OS device under this PCI device";
	cJSON *o = mb_si_push_obj(arr);
	int rc;
	if (!o)
		return MB_ERR_NOMEM;
	rc = mb_si_null(o, "name", why);
	rc |= mb_si_str(o, "kind", "pci", NULL);
	rc |= si_pci_fields(o, p, NULL);
	rc |= si_locality(o, t, p);
	return rc | mb_si_null(o, "speed_mbps", why);
}

static int si_nics_fill(cJSON *arr, hwloc_topology_t t)
{
	int rc = 0;
	for (hwloc_obj_t os = NULL; !rc && (os = hwloc_get_next_osdev(t, os));)
		if (os->attr->osdev.type == HWLOC_OBJ_OSDEV_NETWORK ||
		    os->attr->osdev.type == HWLOC_OBJ_OSDEV_OPENFABRICS)
			rc = si_nic_osdev(arr, t, os);
	for (hwloc_obj_t p = NULL; !rc && (p = hwloc_get_next_pcidev(t, p));) {
		unsigned cls = p->attr->pcidev.class_id;
		if ((cls >> 8 == 0x02 || cls == 0x0c06) && !si_has_net_osdev(p))
			rc = si_nic_bare_pci(arr, t, p);
	}
	return rc;
}

int mb_si_nics(cJSON *o, hwloc_topology_t t, const char *why)
{
	cJSON *arr;
	if (!t)
		return mb_si_null(o, "nics", why);
	if (hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PCI_DEVICE) <= 0 &&
	    hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_OS_DEVICE) <= 0)
		return mb_si_null(o, "nics", "hwloc found no PCI or OS devices");
	if (!(arr = cJSON_CreateArray()))
		return MB_ERR_NOMEM;
	return mb_si_attach(o, "nics", arr, si_nics_fill(arr, t));
}
