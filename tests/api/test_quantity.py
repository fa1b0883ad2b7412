import pytest

from k8py.api.quantity import (
    FORMAT_ERROR,
    SUFFIX_ERROR,
    Format,
    QuantityError,
    canonicalize,
    format_quantity,
    is_valid,
    parse_quantity,
)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("100m", "100m"),
        ("1Gi", "1Gi"),
        ("1e3", "1e3"),
        ("1E", "1E"),
        ("1e+3", "1e3"),
        ("1.5e3", "1500"),
        ("0.5", "500m"),
        (".5", "500m"),
        ("1000m", "1"),
        ("2000", "2k"),
        ("1500", "1500"),
        ("1024", "1024"),
        ("1Ki", "1Ki"),
        ("512Ki", "512Ki"),
        ("1536Mi", "1536Mi"),
        ("1048576Ki", "1Gi"),
        ("1.5Ki", "1536"),
        ("0.3Ki", "307200m"),
        ("0.1n", "1n"),
        ("-0.5", "-500m"),
        ("0", "0"),
        ("-0", "0"),
        ("1.G", "1G"),
        ("  2Gi ", "2Gi"),
        (1, "1"),
        (0.5, "500m"),
        (128, "128"),
    ],
)
def test_canonical_form(text, canonical):
    assert format_quantity(parse_quantity(text)) == canonical
    assert canonicalize(text) == canonical


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1x", FORMAT_ERROR),
        ("", FORMAT_ERROR),
        ("abc", FORMAT_ERROR),
        ("1KiB", FORMAT_ERROR),
        ("1.2.3", FORMAT_ERROR),
        ("1kk", SUFFIX_ERROR),
        ("1e", SUFFIX_ERROR),
        (True, FORMAT_ERROR),
        (None, FORMAT_ERROR),
    ],
)
def test_invalid(text, message):
    with pytest.raises(QuantityError) as ei:
        parse_quantity(text)
    assert str(ei.value) == message
    assert not is_valid(text)
    assert canonicalize(text) == text  # invalid input passes through untouched


def test_format_error_text_is_kubernetes():
    assert FORMAT_ERROR == (
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )


def test_compare_and_values():
    a, b = parse_quantity("500m"), parse_quantity("0.5")
    assert a.cmp(b) == 0 and a <= b and not a < b
    assert parse_quantity("1Gi") > parse_quantity("1G")
    assert parse_quantity("1.5").milli_value() == 1500
    assert parse_quantity("1.5").int_value() == 2
    assert parse_quantity("1Mi").format is Format.BINARY_SI
    assert parse_quantity("0.0005Ki").format is Format.DECIMAL_SI  # below 1: decimal, like kube
    assert str(parse_quantity("1") + parse_quantity("500m")) == "1500m"


def test_round_milli():
    assert canonicalize("0.0001", round_milli=True) == "1m"
    assert canonicalize("1.0001Ki", round_milli=True) == "1024103m"
    assert canonicalize("100m", round_milli=True) == "100m"
