"""An API client this project did not write the runtime of: Python grpcio, with stubs
generated at run time from the repository's protos by grpcio-tools, plus a call made
only through server reflection (as grpcurl does). Run by crates/app/tests/api.rs against
`tenancy start`; prints one JSON object with what the Rust side checks next.

Usage: grpc_client.py ADDR PROTO_DIR SYSTEM_TOKEN INSTANCE_TOKEN HOST_A HOST_B
"""

import json
import os
import sys
import tempfile

import grpc
import grpc_tools
from grpc_tools import protoc


def generate(proto_dir):
    out = tempfile.mkdtemp(prefix="tenancy-grpc-")
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    files = []
    for root, _, names in os.walk(proto_dir):
        files += [os.path.join(root, n) for n in names if n.endswith(".proto")]
    rc = protoc.main(["protoc", f"-I{proto_dir}", f"-I{well_known}",
                      f"--python_out={out}", f"--grpc_python_out={out}", *files])
    if rc != 0:
        raise SystemExit(f"protoc failed: {rc}")
    sys.path.insert(0, out)


class Bearer(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds the bearer token to every call, reflection streams included."""

    def __init__(self, token):
        self.token = token

    def _details(self, details):
        metadata = list(details.metadata or []) + [("authorization", f"Bearer {self.token}")]
        return details._replace(metadata=metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._details(details), requests)


def channel(addr, host, token=None):
    raw = grpc.insecure_channel(addr, options=[("grpc.default_authority", host)])
    return grpc.intercept_channel(raw, Bearer(token)) if token else raw


def expect_error(code, call, *args, contains=None):
    try:
        call(*args)
    except grpc.RpcError as e:
        assert e.code() == code, f"expected {code}, got {e.code()}: {e.details()}"
        if contains:
            assert contains in e.details(), f"{contains!r} not in {e.details()!r}"
        return e.details()
    raise AssertionError(f"expected {code}, the call succeeded")


def main():
    addr, proto_dir, system_token, instance_token, host_a, host_b = sys.argv[1:7]
    generate(proto_dir)
    from google.protobuf import descriptor_pool, message_factory
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )
    from tenancy.filter.v2 import filter_pb2
    from tenancy.instance.v2 import instance_pb2
    from tenancy.instance.v2 import instance_service_pb2 as ipb
    from tenancy.instance.v2 import instance_service_pb2_grpc as igrpc
    from tenancy.org.v2 import org_pb2, org_service_pb2 as opb
    from tenancy.org.v2 import org_service_pb2_grpc as ogrpc

    # Reflection only: list the services, then call GetInstance from descriptors.
    with channel(addr, host_a, instance_token) as ch:
        database = ProtoReflectionDescriptorDatabase(ch)
        services = set(database.get_services())
        assert {"tenancy.instance.v2.InstanceService",
                "tenancy.org.v2.OrganizationService"} <= services, services
        pool = descriptor_pool.DescriptorPool(database)
        method = pool.FindServiceByName("tenancy.instance.v2.InstanceService").FindMethodByName("GetInstance")
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        call = ch.unary_unary("/tenancy.instance.v2.InstanceService/GetInstance",
                              request_serializer=request_class.SerializeToString,
                              response_deserializer=response_class.FromString)
        reflected = call(request_class())
        instance_id = reflected.instance.id
        assert reflected.instance.name == "A", reflected

    with channel(addr, host_a, instance_token) as ch:
        instances, orgs = igrpc.InstanceServiceStub(ch), ogrpc.OrganizationServiceStub(ch)
        instances.UpdateInstance(ipb.UpdateInstanceRequest(instance_name="A renamed"))
        assert instances.GetInstance(ipb.GetInstanceRequest()).instance.name == "A renamed"

        org_id = orgs.AddOrganization(opb.AddOrganizationRequest(name="Py Org")).organization_id
        expect_error(grpc.StatusCode.ALREADY_EXISTS, orgs.AddOrganization,
                     opb.AddOrganizationRequest(name="PY ORG"), contains="organization name")
        fixed = orgs.AddOrganization(opb.AddOrganizationRequest(name="Fixed", organization_id="py-fixed"))
        assert fixed.organization_id == "py-fixed"
        expect_error(grpc.StatusCode.INVALID_ARGUMENT, orgs.AddOrganizationDomain,
                     opb.AddOrganizationDomainRequest(organization_id=org_id, domain="no spaces.example"),
                     contains="domain")
        orgs.AddOrganizationDomain(opb.AddOrganizationDomainRequest(organization_id=org_id, domain="py.example.com"))
        orgs.DeactivateOrganization(opb.DeactivateOrganizationRequest(organization_id="py-fixed"))
        orgs.ActivateOrganization(opb.ActivateOrganizationRequest(organization_id="py-fixed"))
        orgs.UpdateOrganization(opb.UpdateOrganizationRequest(organization_id="py-fixed", name="Fixed 2"))
        orgs.DeleteOrganization(opb.DeleteOrganizationRequest(organization_id="py-fixed"))
        expect_error(grpc.StatusCode.NOT_FOUND, orgs.DeleteOrganization,
                     opb.DeleteOrganizationRequest(organization_id="py-fixed"))

        for n in range(12):
            orgs.AddOrganization(opb.AddOrganizationRequest(name=f"bulk-{(n * 5) % 12:02d}"))
        name_filter = org_pb2.OrganizationSearchFilter(name_filter=org_pb2.OrgNameFilter(
            name="bulk-", method=filter_pb2.TEXT_FILTER_METHOD_STARTS_WITH))

        def page(offset=0, token=""):
            return orgs.ListOrganizations(opb.ListOrganizationsRequest(
                pagination=filter_pb2.PaginationRequest(offset=offset, limit=5, asc=True, page_token=token),
                sorting_column=org_pb2.ORG_FIELD_NAME_NAME, filters=[name_filter]))

        by_offset = []
        for offset in (0, 5, 10):
            response = page(offset=offset)
            assert response.pagination.total_result == 12, response.pagination
            by_offset += [o.name for o in response.organizations]
        by_token, token = [], ""
        while True:
            response = page(token=token)
            by_token += [o.name for o in response.organizations]
            token = response.pagination.next_page_token
            if not token:
                break
        assert by_token == by_offset == [f"bulk-{n:02d}" for n in range(12)], (by_token, by_offset)
        expect_error(grpc.StatusCode.INVALID_ARGUMENT, page, 0, "tampered" + "x" * 10, contains="page_token")
        expect_error(grpc.StatusCode.PERMISSION_DENIED, instances.ListInstances, ipb.ListInstancesRequest())

    with channel(addr, host_b, instance_token) as ch:
        expect_error(grpc.StatusCode.NOT_FOUND, igrpc.InstanceServiceStub(ch).GetInstance, ipb.GetInstanceRequest())
        expect_error(grpc.StatusCode.NOT_FOUND, ogrpc.OrganizationServiceStub(ch).ListOrganizations,
                     opb.ListOrganizationsRequest())
    with channel(addr, host_a) as ch:
        expect_error(grpc.StatusCode.UNAUTHENTICATED, igrpc.InstanceServiceStub(ch).GetInstance,
                     ipb.GetInstanceRequest())

    with channel(addr, host_a, system_token) as ch:
        instances = igrpc.InstanceServiceStub(ch)
        listed = instances.ListInstances(ipb.ListInstancesRequest(
            sorting_column=instance_pb2.FIELD_NAME_NAME,
            pagination=filter_pb2.PaginationRequest(asc=True)))
        assert listed.pagination.total_result == 2, listed
        instances.AddCustomDomain(ipb.AddCustomDomainRequest(instance_id=instance_id, custom_domain="login.py.test"))
        instances.SetPrimaryCustomDomain(ipb.SetPrimaryCustomDomainRequest(
            instance_id=instance_id, custom_domain="login.py.test"))
        domains = instances.ListCustomDomains(ipb.ListCustomDomainsRequest(instance_id=instance_id))
        primary = [d.domain for d in domains.domains if d.primary]
        assert primary == ["login.py.test"], domains
        instances.AddTrustedDomain(ipb.AddTrustedDomainRequest(instance_id=instance_id, trusted_domain="proxy.py.test"))
        instances.RemoveTrustedDomain(ipb.RemoveTrustedDomainRequest(instance_id=instance_id, trusted_domain="proxy.py.test"))
        resolved = instances.ResolveHost(ipb.ResolveHostRequest(host="LOGIN.py.test:443"))
        assert resolved.instance_id == instance_id, resolved

    print(json.dumps({"instance_id": instance_id, "org_id": org_id, "grpcio": grpc.__version__}))


if __name__ == "__main__":
    main()
