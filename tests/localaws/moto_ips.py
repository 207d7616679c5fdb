"""Test-side patch of moto: public addresses from the local AWS's "internet" range.

moto gives instances' auto-assigned public IPs from 54.214.0.0/16 (a real AWS range) and Elastic
IPs from 127.0.0.0/8. The local AWS puts a host at each public address, so they come from
198.19.24.0/21 instead (the upper half of the localaws-internet network; Docker assigns from the
lower half), unique while in use. Applied by the local AWS daemon only, never in plugins/.
"""

import ipaddress

PUBLIC_POOL = "198.19.24.0/21"


class PublicIpAllocator:
    """Addresses of ``pool`` in order, skipping those ``in_use()`` returns; wraps around when all were issued once."""

    def __init__(self, pool=PUBLIC_POOL, in_use=None):
        self.network = ipaddress.ip_network(pool)
        self.in_use = in_use or set
        self._next = 0
        self._issued = set()

    def __call__(self):
        busy = set(self.in_use()) | self._issued
        hosts = list(self.network.hosts())
        for offset in range(len(hosts)):
            address = str(hosts[(self._next + offset) % len(hosts)])
            if address not in busy:
                self._next = (self._next + offset + 1) % len(hosts)
                self._issued.add(address)
                return address
        # every address was issued once: reuse one no longer in use
        free = [str(host) for host in hosts if str(host) not in set(self.in_use())]
        if not free:
            raise RuntimeError("the local AWS's public address pool %s is exhausted" % self.network)
        self._issued = {free[0]}
        return free[0]


def addresses_in_use(backends):
    """Public addresses the given EC2 backends hold (Elastic IPs and network interfaces' public IPs)."""
    used = set()
    for backend in backends:
        for address in list(getattr(backend, "addresses", [])):
            used.add(address.public_ip)
        for eni in list(getattr(backend, "enis", {}).values()):
            if getattr(eni, "public_ip", None):
                used.add(eni.public_ip)
    return used


def apply(allocator):
    """Point moto's public-IP and Elastic-IP allocators at ``allocator`` (for the process)."""
    from moto.ec2.models import elastic_ip_addresses, elastic_network_interfaces  # pylint: disable=import-outside-toplevel
    elastic_network_interfaces.random_public_ip = allocator
    elastic_ip_addresses.random_ip = allocator
