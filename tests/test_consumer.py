"""examples/consumer builds from a keepalived-vip stack's outputs: the outputs
come from running our own program under mocks, and reach the consumer through
a mocked StackReference, as `pulumi up` would hand them over."""

from pathlib import Path

import pulumi

from vip_lab.evaluate import run_with_mocks
from vip_lab.fake_openstack import unwrap

from .harness import EXAMPLE_CONFIG, run_program

CONSUMER = Path(__file__).resolve().parent.parent / "examples" / "consumer" / "__main__.py"


class ConsumerMocks(pulumi.runtime.Mocks):
    def __init__(self, vip_outputs):
        self.vip_outputs = vip_outputs
        self.resources = {}

    def new_resource(self, args):
        state = dict(args.inputs)
        if args.typ == "pulumi:pulumi:StackReference":
            state = {"name": args.inputs["name"], "outputs": self.vip_outputs, "secretOutputNames": []}
        self.resources[(args.typ, args.name)] = unwrap(args.inputs)
        return f"{args.name}-id", state

    def call(self, args):
        if args.token == "openstack:dns/getDnsZone:getDnsZone":
            return {"id": "zone-id", "name": args.args["name"]}
        raise NotImplementedError(args.token)


def run_consumer(vip_outputs, config):
    mocks = ConsumerMocks(vip_outputs)
    exports = run_with_mocks(CONSUMER, mocks, "keepalived-vip-consumer", config)
    return mocks.resources, exports.values


def test_the_consumer_opens_the_service_and_names_the_public_vip():
    vip = run_program({**EXAMPLE_CONFIG, "vipFloatingIp": True})
    resources, outputs = run_consumer(
        vip.outputs,
        {"vipStack": "organization/keepalived-vip/dev", "clientCidr": "198.51.100.0/24", "dnsZone": "example.com."},
    )
    reference = resources[("pulumi:pulumi:StackReference", "organization/keepalived-vip/dev")]
    assert reference["name"] == "organization/keepalived-vip/dev"
    rule = resources[("openstack:networking/secGroupRule:SecGroupRule", "vip-service")]
    assert rule["securityGroupId"] == vip.outputs["nodeSecurityGroupId"]
    assert (rule["protocol"], rule["portRangeMin"], rule["remoteIpPrefix"]) == ("tcp", 443, "198.51.100.0/24")
    record = resources[("openstack:dns/recordSet:RecordSet", "vip-name")]
    assert record["records"] == [vip.outputs["vipFloatingIp"]]
    assert record["name"] == "vip.example.com."
    assert outputs["vipServiceAddress"] == vip.outputs["vipFloatingIp"]


def test_without_a_public_vip_the_consumer_uses_the_vip_itself():
    vip = run_program(EXAMPLE_CONFIG)
    resources, outputs = run_consumer(
        vip.outputs, {"vipStack": "organization/keepalived-vip/dev", "clientCidr": "10.0.0.0/8", "servicePort": 8443}
    )
    assert outputs["vipServiceAddress"] == "192.168.0.254"
    assert ("openstack:dns/recordSet:RecordSet", "vip-name") not in resources
    assert resources[("openstack:networking/secGroupRule:SecGroupRule", "vip-service")]["portRangeMin"] == 8443
