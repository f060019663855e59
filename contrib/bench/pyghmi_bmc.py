"""One pyghmi BMC on one address, the way OVB's openstackbmc runs it: a
subclass of pyghmi.ipmi.bmc.Bmc per node, one process per node, with the
machine's power state kept in memory (as pyghmi's own fakebmc does) so the
benchmark measures the IPMI server and not a cloud.

    python pyghmi_bmc.py ADDRESS PORT
"""

import sys

import pyghmi.ipmi.bmc as bmc


class MemoryBmc(bmc.Bmc):
    """Power and boot device held in memory."""

    def __init__(self, address, port):
        super().__init__({"admin": "password"}, port=port, address=address)
        self.power = "off"
        self.boot = "default"

    def get_power_state(self):
        return self.power

    def power_on(self):
        self.power = "on"

    def power_off(self):
        self.power = "off"

    def power_shutdown(self):
        self.power = "off"

    def power_reset(self):
        pass

    def get_boot_device(self):
        return self.boot

    def set_boot_device(self, device):
        self.boot = device


def main():
    address, port = sys.argv[1], int(sys.argv[2])
    MemoryBmc(address, port).listen()


if __name__ == "__main__":
    main()
