"""A few of the OpenStack resources the stack declares, previewed through the
real provider against a cloud that is not there: the provider must load, take
the SDK's tokens and properties, and plan them without calling the cloud."""

import pulumi
import pulumi_openstack as openstack

group = openstack.networking.SecGroup("nodes", description="keepalived nodes")
openstack.networking.SecGroupRule(
    "vrrp",
    direction="ingress",
    ethertype="IPv4",
    protocol="112",
    remote_group_id=group.id,
    security_group_id=group.id,
)
port = openstack.networking.Port(
    "node",
    network_id="00000000-0000-0000-0000-000000000001",
    fixed_ips=[{"subnet_id": "00000000-0000-0000-0000-000000000002", "ip_address": "192.168.0.11"}],
    allowed_address_pairs=[{"ip_address": "192.168.0.254"}],
    security_group_ids=[group.id],
)
openstack.compute.ServerGroup("nodes", policies="soft-anti-affinity")
openstack.compute.Instance(
    "node",
    flavor_name="m1.small",
    image_id="00000000-0000-0000-0000-000000000003",
    networks=[{"port": port.id}],
    user_data=pulumi.Output.secret("#cloud-config\n"),
)
