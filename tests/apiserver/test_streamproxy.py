"""The API server's side of pods/exec, attach and portforward (apiserver/kubeletproxy.py): the
options as kube-apiserver decodes them and the kubelet query it builds (kube's streamParams).
The relay itself runs end to end in tests/e2e/test_exec.py."""

from __future__ import annotations

import pytest
from multidict import MultiDict

from k8py.api import errors
from k8py.apiserver.kubeletproxy import stream_params


def test_exec_options_streams_only_as_asked() -> None:
    # no defaults: kube stopped defaulting stdout and stderr to true in 1.7 (kubernetes#49579)
    q = MultiDict([("command", "sh"), ("command", "-c"), ("command", "echo hi"), ("container", "c")])
    assert stream_params("exec", q) == ("c", [("command", "sh"), ("command", "-c"), ("command", "echo hi")])
    q = MultiDict([("command", "sh"), ("stdin", "true"), ("stdout", "1"), ("tty", "true"), ("stderr", "false")])
    assert stream_params("exec", q) == ("", [("stdin", "1"), ("stdout", "1"), ("tty", "1"), ("command", "sh")])
    # kube's bool codec: only "0" and "false" are false
    assert stream_params("exec", MultiDict([("stdout", "0"), ("stderr", "False")]))[1] == []
    assert stream_params("exec", MultiDict([("stdout", "yes"), ("stderr", "")]))[1] == [("stdout", "1"),
                                                                                         ("stderr", "1")]


def test_attach_has_no_command_and_portforward_has_ports() -> None:
    assert stream_params("attach", MultiDict([("command", "x"), ("stdin", "1"), ("stdout", "true")])) == \
        ("", [("stdin", "1"), ("stdout", "1")])
    assert stream_params("portforward", MultiDict([("ports", "80"), ("ports", "443,8080")])) == \
        ("", [("port", "80,443,8080")])
    with pytest.raises(errors.StatusError) as e:
        stream_params("portforward", MultiDict([("ports", "http")]))
    assert e.value.code == 400 and 'parsing "http": invalid syntax' in e.value.message
