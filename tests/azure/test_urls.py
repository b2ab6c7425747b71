"""An organisation's hosts: cloud sub-hosts as Azure has them, the org URL itself for a server or the emulator."""

from __future__ import annotations

import pytest

from kiosk.azure.urls import OrgUrls, path_segment


def test_cloud_urls_get_azures_sub_hosts() -> None:
    urls = OrgUrls.parse("https://dev.azure.com/fabrikam/")
    assert urls == OrgUrls(
        core="https://dev.azure.com/fabrikam",
        vssps="https://vssps.dev.azure.com/fabrikam",
        vsaex="https://vsaex.dev.azure.com/fabrikam",
        vsrm="https://vsrm.dev.azure.com/fabrikam",
    )
    old = OrgUrls.parse("https://Fabrikam.VisualStudio.com")
    assert old.vssps == "https://fabrikam.vssps.visualstudio.com"
    assert (
        old.vsrm == "https://fabrikam.vsrm.visualstudio.com" and old.vsaex == "https://fabrikam.vsaex.visualstudio.com"
    )
    assert (
        urls.url("vsrm", "p/_apis/release/releases") == "https://vsrm.dev.azure.com/fabrikam/p/_apis/release/releases"
    )


def test_a_server_or_the_emulator_serves_every_area_on_the_org_url() -> None:
    urls = OrgUrls.parse("http://127.0.0.1:8001/tfs/DefaultCollection")
    assert {urls.core, urls.vssps, urls.vsaex, urls.vsrm} == {"http://127.0.0.1:8001/tfs/DefaultCollection"}
    assert urls.url("vssps", "/_apis/graph/users") == "http://127.0.0.1:8001/tfs/DefaultCollection/_apis/graph/users"
    assert urls.url("core", "https://elsewhere/x") == "https://elsewhere/x"


def test_bad_organization_urls_are_refused() -> None:
    for bad in ("dev.azure.com/org", "ftp://host/org", "https://user:pat@dev.azure.com/org"):
        with pytest.raises(ValueError):
            OrgUrls.parse(bad)
    assert path_segment("Ünïcode project/with #") == "%C3%9Cn%C3%AFcode%20project%2Fwith%20%23"
