"""A consumer of keepalived-vip's outputs: names the VIP in DNS and lets
clients reach the service behind it, without knowing how the VIP was built."""

import ipaddress

import pulumi
import pulumi_openstack as openstack

config = pulumi.Config()
vip = pulumi.StackReference(config.require("vipStack"))

client_cidr = config.require("clientCidr")
ipaddress.IPv4Network(client_cidr)  # a clear error now beats a rejected rule later
service_port = config.get_int("servicePort") or 443

# The nodes' security group admits VRRP, SSH and ICMP only; the service's
# clients are this stack's business.
service_rule = openstack.networking.SecGroupRule(
    "vip-service",
    security_group_id=vip.require_output("nodeSecurityGroupId"),
    direction="ingress",
    ethertype="IPv4",
    protocol="tcp",
    port_range_min=service_port,
    port_range_max=service_port,
    remote_ip_prefix=client_cidr,
    description=f"tcp/{service_port} to the VIP from {client_cidr}",
)

# The public address when the VIP stack publishes one, else the VIP itself.
address = pulumi.Output.all(vip.get_output("vipFloatingIp"), vip.require_output("vipAddress")).apply(
    lambda values: values[0] or values[1]
)

zone_name = config.get("dnsZone")
if zone_name:
    zone = openstack.dns.get_dns_zone(name=zone_name)
    record = openstack.dns.RecordSet(
        "vip-name",
        zone_id=zone.id,
        name=f"{config.get('dnsName') or 'vip'}.{zone.name}",
        type="A",
        ttl=60,
        records=[address],
        description="the keepalived VIP",
    )
    pulumi.export("vipRecord", record.name)

pulumi.export("vipServiceAddress", address)
pulumi.export("serviceRuleId", service_rule.id)
