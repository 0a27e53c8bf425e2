#!/usr/bin/env python3
"""Writes the big inputs of the codec scenario (issue 13) from the fixture generators of
tests/fixtures/, so that the benchmark files have the same shape as the unit tests' ones:

    gen_codec_inputs.py lheo  OUT.xml SESSIONS   an LHEO 2.3 catalogue (5 sessions per
                                                 formation: 2 actions of 3 and 2 sessions)
    gen_codec_inputs.py cnaf  OUT.xml HOUSEHOLDS a CNAF flow in windows-1252 (1 or 2 persons
                                                 per household, CAF and MSA, every state)

Both are streamed to the file (memory stays small whatever the count). Nobody is real:
SIRETs are made up, NIRs are made up with valid keys. A program of bench/, not a test."""
import copy
import os
import sys
import xml.etree.ElementTree as ET

top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(top, "tests", "fixtures", "lheo"))
import make_fixtures as lheo_fx  # noqa: E402

del sys.modules["make_fixtures"]
sys.path[0] = os.path.join(top, "tests", "fixtures", "cnaf")
import make_fixtures as cnaf_fx  # noqa: E402

CNAF_SAMPLE = os.environ.get(
    "PTIBUS_CNAF_SAMPLE",
    os.path.join(top, "..", "shared", "samples", "carnet-de-bord", "RSABEM-ouvert.xml"))

TITLES = ["Agent de propreté et d'hygiène", "Conducteur de chariots élévateurs",
          "Initiation au numérique", "Aide à domicile", "Cuisinier en restauration collective"]


def siret(i):
    """A made-up 14-digit SIRET whose last digit makes the Luhn sum a multiple of 10."""
    base = "%013d" % (1000000000000 + i)
    for d in "0123456789":
        digits = [int(c) for c in base + d]
        total = sum(x if k % 2 == 0 else (2 * x if x < 5 else 2 * x - 9)
                    for k, x in enumerate(reversed(digits)))
        if total % 10 == 0:
            return base + d
    raise AssertionError("no Luhn digit")


def lheo_formation(i):
    """Formation i: the first fixture formation's shape, its own numero and dates."""
    f = copy.deepcopy(lheo_fx.FORMATIONS[0])
    f["numero"] = "F-%06d" % i
    f["title"] = "%s (%d)" % (TITLES[i % len(TITLES)], i)
    f["siret"] = siret(i)
    year = 2027 + i % 3
    acts = []
    for a, ns in (("A1", 3), ("A2", 2)):
        act = copy.deepcopy(lheo_fx.FORMATIONS[0]["actions"][0])
        act["numero"] = a
        act["insee"] = "55%03d" % (i % 600)
        act["heures"] = str(70 + i % 400)
        act["funders"] = [("10", str(1 + i % 20)), ("5", None)] if i % 2 else [("10", "12")]
        act["sessions"] = [{"numero": "S%d" % s, "debut": "%d%02d01" % (year, s + 1),
                            "fin": "%d%02d28" % (year, s + 4), "etat": str(1 + (i + s) % 3)}
                           for s in range(1, ns + 1)]
        acts.append(act)
    f["actions"] = acts
    return f


def write_lheo(path, sessions):
    formations = (sessions + 4) // 5
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n<lheo xmlns="%s">\n <offres>\n'
                  % lheo_fx.NS23)
        for i in range(formations):
            out.write("\n".join(lheo_fx.formation(lheo_formation(i))) + "\n")
        out.write(" </offres>\n</lheo>\n")


def nir(i, sexe):
    """A 15-character NIR with a valid key (97 - n mod 97), unique for i < 10^6."""
    base = "%d%02d%02d55%03d%03d" % (sexe, 60 + i % 40, 1 + i % 12, (i // 1000) % 1000, i % 1000)
    return base + "%02d" % (97 - int(base) % 97)


NAMES = [("DUPRÉ", "HÉLÈNE"), ("CŒUR", "ZOË"), ("NOËL", "JOSÉ"), ("GARÇON", "RENÉ"),
         ("BÉRANGER", "AMÉLIE"), ("MARTIN", "LÉA")]


def cnaf_household(hh, pt, i):
    nom, prenom = NAMES[i % len(NAMES)]
    persons = [cnaf_fx.person(pt, nom, prenom, "1985-07-14", nir(2 * i, 2), "2",
                              [("PFA", "DEM"), ("RSA", "DEM")], "1", "%07dA" % (i % 10 ** 7))]
    if i % 3 == 0:  # a couple: the spouse without a NIR
        persons.append(cnaf_fx.person(pt, nom, "PAUL", "1980-01-02", None, "1",
                                      [("RSA", "CJT"), ("PFA", "DEM")], str(i % 2)))
    fonorg = "MSA" if i % 5 == 0 else "CAF"
    return cnaf_fx.household(hh, fonorg, "551", "%015d" % (i + 1), str(i % 7), persons,
                             "55100", "55545", susdro="01" if i % 7 == 3 else None)


def write_cnaf(path, households):
    root = ET.parse(CNAF_SAMPLE).getroot()
    hh = root.find("InfosFoyerRSA")
    pt = hh.find("Personne")
    ident = root.find("IdentificationFlux")
    trans = root.find("TransmissionFlux")
    cnaf_fx.text(trans, "NBTOTDOSRSATRANSM", "%08d" % households)
    enc = "windows-1252"

    def dump(el):
        ET.indent(el, "\t", level=1)
        el.tail = "\n"
        return "\t" + ET.tostring(el, encoding="unicode")

    with open(path, "w", encoding=enc, newline="\n") as out:
        out.write('<?xml version="1.0" encoding="%s"?>\n<Racine>\n' % enc)
        out.write(dump(ident))
        for i in range(households):
            out.write(dump(cnaf_household(hh, pt, i)))
        out.write(dump(trans))
        out.write("</Racine>\n")


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("lheo", "cnaf"):
        sys.exit(__doc__)
    kind, path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    (write_lheo if kind == "lheo" else write_cnaf)(path, count)


if __name__ == "__main__":
    main()
