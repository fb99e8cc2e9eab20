"""Phrasings of every statement, keyed by sentence family.

A family is one kind of statement (``faz.enlarged``, ``ma.present``, ...); which families fire is
decided by ``reasoning.families`` from measured values only, and the seeded choice here picks only the
wording. Placeholders are filled from measured values (``reasoning.py``); numbers always carry units.
Absence is always worded as "no <lesion>", "without <lesion>" or "<lesion> is absent / not seen", the
forms ``check.py`` reads.
"""

from __future__ import annotations

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty")

STAGE_TEXT = {
    "normal": "no diabetic retinopathy",
    "mild": "mild non-proliferative diabetic retinopathy (mild NPDR)",
    "moderate": "moderate non-proliferative diabetic retinopathy (moderate NPDR)",
    "severe": "severe non-proliferative diabetic retinopathy (severe NPDR)",
    "pdr": "proliferative diabetic retinopathy (PDR)",
}
STAGE_SHORT = {"normal": "no DR", "mild": "mild NPDR", "moderate": "moderate NPDR", "severe": "severe NPDR", "pdr": "PDR"}
DIAGNOSIS = {"normal": "normal", "mild": "mild NPDR", "moderate": "moderate NPDR", "severe": "severe NPDR", "pdr": "PDR"}

FAMILIES: dict[str, tuple[str, ...]] = {
    # 1. field and image quality
    "field": (
        "This is a {fov} × {fov} mm en-face OCTA of the superficial vascular plexus of the {eye}, {size} × {size} px.",
        "The scan covers a {fov} × {fov} mm field of the {eye} ({size} × {size} px, superficial plexus).",
        "Field: {fov} × {fov} mm superficial-plexus OCTA angiogram of the {eye}, sampled at {size} × {size} px.",
        "We are looking at a {fov} × {fov} mm OCTA en-face image ({size} × {size} px) of the {eye}.",
        "The image is a {size} × {size} px, {fov} × {fov} mm macular OCTA of the {eye}.",
        "First, the field: a {fov} × {fov} mm OCTA of the {eye}, {size} × {size} px, centred on the fovea.",
    ),
    "quality.good": (
        "Image quality is good: vessel-to-background contrast is {contrast}.",
        "Vessels stand out clearly (contrast {contrast}), so image quality is good.",
        "The vessel contrast of {contrast} gives good image quality.",
        "Quality is good, with a vessel-to-background contrast of {contrast}.",
    ),
    "quality.adequate": (
        "Image quality is adequate: vessel-to-background contrast is {contrast}.",
        "Vessel contrast is moderate ({contrast}); image quality is adequate for grading.",
        "The vessel contrast of {contrast} gives adequate image quality.",
        "Quality is adequate, with a vessel-to-background contrast of {contrast}.",
    ),
    "quality.limited": (
        "Image quality is limited: vessel-to-background contrast is only {contrast}.",
        "Vessel contrast is low ({contrast}), so image quality is limited.",
        "The vessel contrast of {contrast} gives limited image quality.",
    ),
    # 2. FAZ
    "faz.normal": (
        "The FAZ measures {area} mm², within the normal range.",
        "The foveal avascular zone has an area of {area} mm², which is of normal size.",
        "FAZ area is {area} mm² (normal size).",
        "The foveal avascular zone is of normal size at {area} mm².",
        "Next, the FAZ: its area is {area} mm², within normal limits.",
    ),
    "faz.enlarged": (
        "The FAZ is enlarged, measuring {area} mm².",
        "The foveal avascular zone is enlarged, with an area of {area} mm².",
        "FAZ area is {area} mm², which is enlarged.",
        "Next, the FAZ: it is enlarged at {area} mm².",
        "The foveal avascular zone measures {area} mm² and is enlarged.",
    ),
    "faz.regular": (
        "Its outline is regular (circularity {circ}).",
        "The FAZ outline is regular, with a circularity of {circ}.",
        "FAZ circularity is {circ}, a regular contour.",
        "Its border is smooth and regular (circularity {circ}).",
    ),
    "faz.irregular": (
        "Its outline is irregular (circularity {circ}).",
        "The FAZ outline is irregular, with a circularity of {circ}.",
        "FAZ circularity is {circ}, an irregular contour.",
        "Its border is irregular (circularity {circ}).",
    ),
    "faz.offset": (
        "Its centre lies {offset} mm from the centre of the scan.",
        "The FAZ centre is {offset} mm from the field centre.",
        "The fovea sits {offset} mm from the image centre.",
    ),
    # 3. perfusion / vessel density
    "density.overall": (
        "Overall vessel density is {density}%.",
        "Vessel density over the whole field is {density}%.",
        "Turning to perfusion, overall vessel density is {density}%.",
        "Across the whole scan, vessels cover {density}% of the area.",
        "Perfusion: the whole-field vessel density is {density}%.",
    ),
    "density.sectors": (
        "By sector: {sectors}.",
        "Sector densities are {sectors}.",
        "Per sector, vessel density is {sectors}.",
        "The sector-wise densities read {sectors}.",
    ),
    "density.uniform": (
        "Density is fairly even across the sectors, lowest in the {lowest} sector ({low}%).",
        "No sector stands out as reduced; the lowest is the {lowest} sector ({low}%).",
        "Perfusion is evenly distributed, with the lowest value in the {lowest} sector ({low}%).",
    ),
    "density.reduced": (
        "Density is reduced in the {reduced} sector{s_reduced}, lowest in the {lowest} sector ({low}%).",
        "Perfusion is focally reduced in the {reduced} sector{s_reduced}; the lowest is the {lowest} sector ({low}%).",
        "Vessel density drops in the {reduced} sector{s_reduced} (lowest in the {lowest} sector, {low}%).",
    ),
    # 4. non-perfusion
    "np.none": (
        "There is no capillary non-perfusion.",
        "No areas of non-perfusion are seen.",
        "The capillary bed is continuous, with no non-perfusion.",
        "Non-perfusion is absent.",
        "No capillary dropout is seen.",
    ),
    "np.present": (
        "There {are} {count} {areas} of capillary non-perfusion: {regions}; {total} mm² in total.",
        "Capillary non-perfusion is present in {count} {areas} ({regions}), {total} mm² in total.",
        "{Count} non-perfused {areas} {are} seen: {regions}, together {total} mm².",
        "Non-perfusion: {count} {areas}, {regions}, totalling {total} mm².",
        "The capillary bed shows {count} {areas} of non-perfusion ({regions}; total {total} mm²).",
    ),
    # 5. microaneurysms
    "ma.none": (
        "No microaneurysms are seen.",
        "There are no microaneurysms.",
        "Microaneurysms are absent.",
        "I find no microaneurysms.",
    ),
    "ma.present": (
        "There {are} {count} {microaneurysms}, in the {sectors}.",
        "{Count} {microaneurysms} {are} visible, in the {sectors}.",
        "I count {count} {microaneurysms}, located in the {sectors}.",
        "Microaneurysm count: {count}, in the {sectors}.",
        "{Count} focal capillary dilations, i.e. {count} {microaneurysms}, lie in the {sectors}.",
    ),
    # 6. IRMA / neovascularization
    "irma_nv.none": (
        "There is no IRMA and no neovascularization.",
        "No IRMA or neovascularization is seen.",
        "IRMA and neovascularization are absent: no IRMA, no neovascularization.",
        "I see no intraretinal microvascular abnormalities and no neovascularization.",
    ),
    "irma.present": (
        "IRMA {is} present in the {sectors} ({count} {lesions}).",
        "There {is} {count} intraretinal microvascular {abnormalities} (IRMA), in the {sectors}.",
        "Dilated shunt vessels consistent with IRMA are seen in the {sectors} ({count} {lesions}).",
    ),
    "irma.none": (
        "No IRMA is seen.",
        "There is no IRMA.",
        "IRMA is absent.",
    ),
    "nv.present": (
        "Neovascularization is present in the {sectors} ({count} {lesions}).",
        "There {is} {count} neovascular {tufts} (neovascularization), in the {sectors}.",
        "Fine new-vessel tufts of neovascularization are seen in the {sectors} ({count} {lesions}).",
    ),
    "nv.none": (
        "No neovascularization is seen.",
        "There is no neovascularization.",
        "Neovascularization is absent.",
    ),
    # 7. tortuosity
    "tortuosity.normal": (
        "Vessel tortuosity is normal (tortuosity index {index}).",
        "The arterioles and venules run a normal course, tortuosity index {index}.",
        "Tortuosity index is {index}, within normal limits.",
        "Large-vessel tortuosity is normal, with a tortuosity index of {index}.",
    ),
    "tortuosity.increased": (
        "Vessel tortuosity is increased (tortuosity index {index}).",
        "The arterioles and venules are tortuous, tortuosity index {index} (increased).",
        "Tortuosity index is {index}, which is increased.",
        "Large-vessel tortuosity is increased, with a tortuosity index of {index}.",
    ),
    # 8. impression
    "impression.normal": (
        "Impression: {stage_text}; {evidence}, with a FAZ of {area} mm² and an overall vessel density of {density}%.",
        "In summary, this is {stage_text}: {evidence}; the FAZ measures {area} mm² and overall vessel density is {density}%.",
        "Taken together, the findings indicate {stage_text}, since {evidence} (FAZ {area} mm², overall vessel density {density}%).",
    ),
    "impression.dr": (
        "Impression: {stage_text}, decided by {evidence} (FAZ {area} mm², overall vessel density {density}%).",
        "In summary, this is {stage_text}, based on {evidence}; FAZ {area} mm², overall vessel density {density}%.",
        "Taken together, the findings indicate {stage_text}: the deciding evidence is {evidence} (FAZ {area} mm², overall vessel density {density}%).",
        "Overall, the grade is {stage_text}, because of {evidence}, with a FAZ of {area} mm² and overall vessel density {density}%.",
    ),
}

# Short answers for the other tasks.
CAPTIONS: dict[str, tuple[str, ...]] = {
    "caption.normal": (
        "{fov} mm OCTA of the {eye} with no diabetic retinopathy; FAZ {area} mm², vessel density {density}%.",
        "Healthy-looking {fov} mm OCTA of the {eye}: no DR, FAZ {area} mm², vessel density {density}%.",
        "OCTA ({fov} mm, {eye}) without diabetic retinopathy; vessel density {density}%.",
    ),
    "caption.dr": (
        "{fov} mm OCTA of the {eye} showing {stage_short}: {evidence}.",
        "OCTA ({fov} mm, {eye}) with {stage_short}; {evidence}.",
        "{Stage_short} on a {fov} mm OCTA of the {eye}, with {evidence}.",
    ),
}
YES_NO: dict[str, tuple[str, ...]] = {
    "yes": (
        "Yes. The image shows {stage_short}, with {evidence}.",
        "Yes, there is diabetic retinopathy ({stage_short}): {evidence}.",
        "Yes — {evidence}, consistent with {stage_short}.",
    ),
    "no": (
        "No. There are no signs of diabetic retinopathy.",
        "No, there is no diabetic retinopathy: {evidence}.",
        "No — no diabetic retinopathy is visible; {evidence}.",
    ),
}
STAGE_ANSWER: tuple[str, ...] = (
    "{Stage_text}.",
    "The stage is {stage_text}, based on {evidence}.",
    "{Stage_short_cap}: {evidence}.",
)
COUNT_MA: dict[str, tuple[str, ...]] = {
    "none": ("There are no microaneurysms.", "Zero: no microaneurysms are visible.", "No microaneurysms are seen."),
    "some": (
        "There {are} {count} {microaneurysms}.",
        "{Count_digit} {microaneurysms}, in the {sectors}.",
        "I count {count} {microaneurysms}, in the {sectors}.",
    ),
}
GROUNDING_EMPTY: tuple[str, ...] = ("[]", "No lesions of that kind are visible, so there is nothing to box: []")
