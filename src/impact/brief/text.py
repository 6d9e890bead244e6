"""The words of the briefs, in Dutch (B1: short sentences, everyday words) and English.

Placeholders are filled only with numbers read from the output tables
(:mod:`impact.brief.facts`) and with names from the tables. Figure texts override the
defaults of :mod:`impact.report.fair_figures`.
"""

from __future__ import annotations

__all__ = ["TEXT", "FIGURE_TEXT", "FOREST_TEXT", "GROUP_TEXT", "LANGUAGES"]

LANGUAGES = ("nl", "en")

TEXT: dict[str, dict[str, str]] = {
    "nl": {
        "title": "Uitstroom naar werk in {name}",
        "title_national": "Uitstroom naar werk in Nederland",
        "subtitle": "Wat kwam door de arbeidsmarkt, en wat door de dienstverlening? "
                    "Beleidsnotitie, {p0} tot en met {p1}.",
        "short": "In het kort",
        "happened_h": "Wat gebeurde er met de uitstroom naar werk?",
        "happened": "In {p1} vond elke maand gemiddeld {rate1} procent van de klanten werk. "
                    "In {p0} was dat {rate0} procent. Het verschil is {obs} procentpunt.",
        "where_h": "Waar kwam het verschil vandaan?",
        "where": "We splitsen het verschil tussen {p0} en {p1} in vijf delen. "
                 "Bij elk deel staat een marge: de echte waarde ligt met 95% zekerheid "
                 "tussen de twee getallen.",
        "c_labour_market": "Arbeidsmarkt in de regio en de gemeente: {v} procentpunt{rng}.",
        "c_shocks": "Gebeurtenissen zoals een nieuw bedrijventerrein of een sluiting: {v} procentpunt{rng}.",
        "c_composition": "Andere klanten (leeftijd, opleiding, afstand tot werk): {v} procentpunt{rng}.",
        "c_quality": "Kwaliteit van de begeleiding: {v} procentpunt{rng}.",
        "c_residual": "Overig, niet verklaard: {v} procentpunt{rng}.",
        "range": " ({lo} tot {hi})",
        "waterfall_cap": "Verandering van de uitstroom naar werk, per deel. "
                         "Balken omhoog verhogen de uitstroom, balken omlaag verlagen die.",
        "stands_h": "Hoe staat {name} ervoor, zonder geluk of pech?",
        "stands": "Met deze klanten en deze arbeidsmarkt verwachten we dat elke maand "
                  "{expected} procent van de klanten werk vindt (hele periode). "
                  "In werkelijkheid was dat {observed} procent. De verhouding is {oe}.",
        "signal_within": "Dat verschil past bij toeval: het ligt binnen de grenzen in de figuur hieronder.",
        "signal_above": "Dat is meer dan toeval kan verklaren: {name} ligt boven de grenzen in de figuur hieronder.",
        "signal_below": "Dat is minder dan toeval kan verklaren: {name} ligt onder de grenzen in de figuur hieronder.",
        "ranks": "Op de ruwe uitstroom staat {name} op plaats {rn} van {n} (marge {rnl} tot {rnh}). "
                 "Op de bijdrage van de begeleiding staat {name} op plaats {rq} (marge {rql} tot {rqh}). "
                 "Die bijdrage is {qc} procentpunt ({qlo} tot {qhi}).",
        "ranks_note": "Een ranglijst lijkt zeker, maar is het niet. Kijk daarom naar de marges in de figuur met de ranglijst.",
        "funnel_cap": "Werkelijke tegenover verwachte uitstroom naar werk, per gemeente. "
                      "Punten buiten de lijnen wijken meer af dan toeval kan verklaren.",
        "rank_cap": "Plaats op de ranglijst, met marge. Grijs: ruwe uitstroom. "
                    "Blauw: bijdrage van de begeleiding.",
        "national_stands_h": "Hoe verschillen gemeenten, zonder geluk of pech?",
        "national_stands": "Van de {n} gemeenten liggen er {above} boven en {below} onder de "
                           "grenzen van wat toeval kan verklaren (figuur hieronder).",
        "programme_h": "Wat deed de aanpak {programme}?",
        "programme": "In gemeenten die met de aanpak begonnen, vonden daarna elke maand {att} "
                     "procentpunt meer klanten werk (marge {lo} tot {hi}). Het gaat om het "
                     "gemiddelde over alle gemeenten met de aanpak.",
        "pretrend_warn": "Let op: vóór de start gingen deze gemeenten al iets anders dan de "
                         "andere (toets: p = {p}). Lees het effect daarom voorzichtig.",
        "pretrend_ok": "Vóór de start gingen deze gemeenten niet duidelijk anders dan de "
                       "andere (toets: p = {p}).",
        "event_cap": "Effect van de aanpak per maand voor en na de start, met marge.",
        "for_whom_h": "Voor wie werkt het?",
        "fw_intro": "We schatten de effecten ook apart voor groepen klanten: naar {dims}. "
                    "Ook hier staat bij elk getal een marge.",
        "fw_range": " (marge {lo} tot {hi})",
        "fw_duration_caveat": "Groepen naar duur vergelijken wie na zo lang nog in de bijstand "
                              "zit; bij goede klantmanagers stromen de makkelijkere klanten "
                              "eerder uit, dus lees die verschillen voorzichtig.",
        "fw_quality": "Het geschatte effect van één punt kwaliteit op de kans op werk per "
                      "maand is het grootst bij {best}: {v} procentpunt{rng}. Het is het "
                      "kleinst bij {worst}: {w} procentpunt{wrng}.",
        "fw_adoption": "Het geschatte effect van de aanpak {programme} op de kans op werk "
                       "per maand is het grootst bij {best}: {v} procentpunt{rng}. Het is "
                       "het kleinst bij {worst}: {w} procentpunt{wrng}.",
        "fw_no_difference": "Er is geen duidelijk verschil tussen de groepen: bij elk "
                            "kenmerk geeft de toets op gelijke effecten p = {p} of meer. "
                            "De verschillen kunnen dus toeval zijn.",
        "fw_difference": "De groepen verschillen duidelijk naar {dims}.",
        "fw_difference_rest": "Naar {dims} is er geen duidelijk verschil.",
        "fw_chance": "We maken veel vergelijkingen. Een verschil dat maar net duidelijk is, "
                     "kan daarom nog toeval zijn.",
        "fw_dim_p": "{dim} (toets: {p})",
        "fw_rw": "We toetsen {n} groepen tegelijk. Na correctie daarvoor ({method}) is "
                 "het effect bij {k} daarvan duidelijk anders dan nul{mark}.",
        "fw_rw_none": "We toetsen {n} groepen tegelijk. Na correctie daarvoor ({method}) "
                      "is het effect bij geen enkele groep duidelijk anders dan nul.",
        "fw_rw_mark": " (met * in de figuur)",
        "fw_other_none": "Bij {outcome} is er geen duidelijk verschil tussen groepen "
                         "(kleinste toets: {p}).",
        "fw_other": "Bij {outcome} verschillen groepen duidelijk in {items}.",
        "fw_other_some": "Bij {outcome} verschillen groepen duidelijk in onder meer {items}.",
        "fw_other_item": "het effect van {what} naar {dims}",
        "fw_what_quality": "kwaliteit",
        "fw_what_adoption": "de aanpak",
        "fw_outcome_education": "uitstroom naar een opleiding",
        "fw_outcome_any": "uitstroom om welke reden dan ook",
        "fw_progress": "Werk is niet het enige doel van begeleiding. Zo verandert de kans op "
                       "een tussenresultaat tot het volgende voortgangsgesprek:",
        "fw_progress_quality": "{v} procentpunt per punt kwaliteit{rng}",
        "fw_progress_adoption": "{v} procentpunt door de aanpak {programme}{rng}",
        "fw_progress_ladder_step_up": "een stap hoger op de participatieladder",
        "fw_progress_goal_reached": "een bereikt persoonlijk doel",
        "fw_progress_other": "\u2018{measure}\u2019",
        "fw_shrink": "Kleine groepen geven onzekere schattingen, die door toeval hoog of "
                     "laag kunnen uitvallen. De gekrompen schattingen (open ruitjes in de "
                     "figuur) trekken elke groep naar het effect voor alle klanten, sterker "
                     "naarmate de eigen schatting onzekerder is. Voor kleine groepen zijn zij "
                     "daarom de betere gids.",
        "fw_shrink_example": "Bijvoorbeeld: bij {g} is de schatting {raw} procentpunt en de "
                             "gekrompen schatting {shr} procentpunt.",
        "fw_cap": "Effect van één punt kwaliteit op uitstroom naar werk, per groep klanten, "
                  "met 95%-marge. Open ruitjes: gekrompen schattingen. Stippellijn en grijze "
                  "band: alle klanten samen.",
        "fw_cap_adoption": "Effect van de aanpak op uitstroom naar werk, per groep klanten, "
                           "met 95%-marge. Open ruitjes: gekrompen schattingen. Stippellijn "
                           "en grijze band: alle klanten samen.",
        "fw_and": "en",
        "sure_h": "Hoe zeker zijn we? Wat kunnen de gegevens niet zeggen?",
        "sure_quality": "Eén punt hoger op de kwaliteitsmeting gaat samen met {q} procentpunt "
                        "meer uitstroom per maand (marge {lo} tot {hi}).",
        "sure_list": "De marges tonen de onzekerheid door toeval. Fouten in de gegevens tonen ze niet.|"
                     "Het gaat om gemiddelden. Over één klantmanager of één klant zegt dit niets.|"
                     "We zien alleen uitstroom die in de gegevens staat. Vrijwilligerswerk of een stap op de participatieladder telt hier niet mee.|"
                     "Een klein aantal klanten (minder dan {min_cell}) tonen we niet, om privacy te beschermen.",
        "sure_recorded_progress": "Alleen uitstroom en tussenresultaten in de gegevens tellen "
                                  "mee (vrijwilligerswerk niet).",
        "method_h": "Hoe hebben we dit berekend?",
        "method": "We volgen elke klant per maand. Een model schat de kans op werk uit de "
                  "kenmerken van de klant, de arbeidsmarkt, gebeurtenissen en de gemeten "
                  "kwaliteit van de begeleiding, en vergelijkt gemeenten in dezelfde regio en "
                  "maand. Het verschil tussen twee jaren delen we eerlijk op in delen (Shapley). "
                  "Alle getallen komen uit de tabellen van de analyse.",
        "source": "Bron: CBS (gemeentelijke indeling, arbeidsmarktregio's, landelijke reeksen); bewerking: impact.",
        "minus_note": "",
    },
    "en": {
        "title": "Outflow to work in {name}",
        "title_national": "Outflow to work in the Netherlands",
        "subtitle": "How much came from the labour market, and how much from the service? "
                    "Policy brief, {p0} to {p1}.",
        "short": "In short",
        "happened_h": "What happened to outflow to work?",
        "happened": "In {p1}, on average {rate1}% of clients found work each month. "
                    "In {p0} it was {rate0}%. The difference is {obs} percentage points.",
        "where_h": "Where did the difference come from?",
        "where": "We split the difference between {p0} and {p1} into five parts. Each part "
                 "has a range: the true value lies between the two numbers with 95% certainty.",
        "c_labour_market": "Labour market in the region and the municipality: {v} percentage points{rng}.",
        "c_shocks": "Events such as a new business park or a closure: {v} percentage points{rng}.",
        "c_composition": "Different clients (age, education, distance to work): {v} percentage points{rng}.",
        "c_quality": "Quality of the guidance: {v} percentage points{rng}.",
        "c_residual": "Other, not explained: {v} percentage points{rng}.",
        "range": " ({lo} to {hi})",
        "waterfall_cap": "Change in outflow to work, by part. Bars going up raise "
                         "outflow, bars going down lower it.",
        "stands_h": "Where does {name} stand once luck is taken out?",
        "stands": "With these clients and this labour market we expect {expected}% of clients "
                  "to find work each month (whole period). In fact it was {observed}%. "
                  "The ratio is {oe}.",
        "signal_within": "That difference fits chance: it lies within the limits in the figure below.",
        "signal_above": "That is more than chance can explain: {name} lies above the limits in the figure below.",
        "signal_below": "That is less than chance can explain: {name} lies below the limits in the figure below.",
        "ranks": "On raw outflow, {name} ranks {rn} of {n} (range {rnl} to {rnh}). On the "
                 "contribution of its guidance, {name} ranks {rq} (range {rql} to {rqh}). "
                 "That contribution is {qc} percentage points ({qlo} to {qhi}).",
        "ranks_note": "A ranking looks certain, but it is not. Look at the ranges in the rank figure.",
        "funnel_cap": "Actual against expected outflow to work, by municipality. "
                      "Points outside the lines differ more than chance can explain.",
        "rank_cap": "Rank with range. Grey: raw outflow. Blue: contribution of the guidance.",
        "national_stands_h": "How do municipalities differ once luck is taken out?",
        "national_stands": "Of the {n} municipalities, {above} lie above and {below} below the "
                           "limits of what chance can explain (figure below).",
        "programme_h": "What did the {programme} approach do?",
        "programme": "In municipalities that started the approach, {att} percentage points more "
                     "clients found work each month afterwards (range {lo} to {hi}). This is "
                     "the average over all municipalities with the approach.",
        "pretrend_warn": "Note: before the start, these municipalities already moved a little "
                         "differently from the others (test: p = {p}). Read the effect with care.",
        "pretrend_ok": "Before the start, these municipalities did not move clearly differently "
                       "from the others (test: p = {p}).",
        "event_cap": "Effect of the approach by month before and after the start, with range.",
        "for_whom_h": "For whom does it work?",
        "fw_intro": "We also estimated the effects separately for groups of clients: by "
                    "{dims}. Here too, each number comes with a range.",
        "fw_range": " (range {lo} to {hi})",
        "fw_duration_caveat": "Groups by time on benefit compare those still on benefit after "
                              "so long; good caseworkers place the easier clients sooner, so "
                              "read those differences with care.",
        "fw_quality": "The estimated effect of one quality point on the monthly chance of "
                      "finding work is largest for {best}: {v} percentage points{rng}. It is "
                      "smallest for {worst}: {w} percentage points{wrng}.",
        "fw_adoption": "The estimated effect of the {programme} approach on the monthly "
                       "chance of finding work is largest for {best}: {v} percentage "
                       "points{rng}. It is smallest for {worst}: {w} percentage points{wrng}.",
        "fw_no_difference": "There is no clear difference between the groups: for each "
                            "characteristic the test of equal effects gives p = {p} or more. "
                            "The differences may be chance.",
        "fw_difference": "The groups differ clearly by {dims}.",
        "fw_difference_rest": "By {dims} there is no clear difference.",
        "fw_chance": "We make many comparisons, so a difference that is only just clear can "
                     "still be chance.",
        "fw_dim_p": "{dim} (test: {p})",
        "fw_rw": "We test {n} groups at once. Taking that into account ({method}), the "
                 "effect is clearly different from zero in {k} of them{mark}.",
        "fw_rw_none": "We test {n} groups at once. Taking that into account ({method}), "
                      "no group has an effect clearly different from zero.",
        "fw_rw_mark": " (marked * in the figure)",
        "fw_other_none": "For {outcome}, there is no clear difference between groups "
                         "(smallest test: {p}).",
        "fw_other": "For {outcome}, groups differ clearly in {items}.",
        "fw_other_some": "For {outcome}, groups differ clearly in, among others, {items}.",
        "fw_other_item": "the effect of {what} by {dims}",
        "fw_what_quality": "quality",
        "fw_what_adoption": "the programme",
        "fw_outcome_education": "exit to education",
        "fw_outcome_any": "leaving benefit for any reason",
        "fw_progress": "Work is not the only aim of guidance. This is how the chance of an "
                       "intermediate result by the next progress review changes:",
        "fw_progress_quality": "{v} percentage points per quality point{rng}",
        "fw_progress_adoption": "{v} percentage points through the approach {programme}{rng}",
        "fw_progress_ladder_step_up": "a step up the participation ladder",
        "fw_progress_goal_reached": "a reached personal goal",
        "fw_progress_other": "\u2018{measure}\u2019",
        "fw_shrink": "Small groups give uncertain estimates, which can come out high or low "
                     "by chance. The shrunken estimates (open diamonds in the figure) pull "
                     "each group towards the effect for all clients, the more so the less "
                     "certain its own estimate. For small groups they are the better guide.",
        "fw_shrink_example": "For example, for {g} the estimate is {raw} percentage points "
                             "and the shrunken estimate {shr} percentage points.",
        "fw_cap": "Effect of one quality point on exits to work, by group of clients, with "
                  "95% range. Open diamonds: shrunken estimates. Dashed line and grey band: "
                  "all clients together.",
        "fw_cap_adoption": "Effect of the approach on exits to work, by group of clients, "
                           "with 95% range. Open diamonds: shrunken estimates. Dashed line "
                           "and grey band: all clients together.",
        "fw_and": "and",
        "sure_h": "How sure are we? What can the data not say?",
        "sure_quality": "One point higher on the quality measurement goes with {q} percentage "
                        "points more outflow per month (range {lo} to {hi}).",
        "sure_list": "The ranges show uncertainty from chance. They do not show errors in the data.|"
                     "These are averages. They say nothing about one caseworker or one client.|"
                     "We only see outflow recorded in the data. Volunteering or a step up the participation ladder does not count here.|"
                     "Small numbers of clients (fewer than {min_cell}) are not shown, to protect privacy.",
        "sure_recorded_progress": "Only outflow and intermediate results in the data count "
                                  "(volunteering does not).",
        "method_h": "How did we calculate this?",
        "method": "We follow every client month by month. A model estimates the chance of work "
                  "from the client's characteristics, the labour market, events and the measured "
                  "quality of guidance, and compares municipalities in the same region and "
                  "month. The difference between two years is split fairly into parts "
                  "(Shapley). Every number comes from the analysis's output tables.",
        "source": "Source: CBS (municipal boundaries, labour-market regions, national series); processing: impact.",
        "minus_note": "",
    },
}

#: figure texts per language (keys of impact.report.fair_figures.DEFAULT_TEXT and more)
FIGURE_TEXT: dict[str, dict[str, str]] = {
    "nl": {
        "suppressed_units": "gemeenten niet getoond (privacy): {n}",
        "suppressed_panel": "niet getoond\n(privacy)",
        "funnel_title": "Uitstroom naar werk: werkelijk tegenover verwacht",
        "funnel_xlabel": "verwacht aantal keer uitstroom naar werk",
        "funnel_ylabel": "werkelijk / verwacht",
        "funnel_within": "binnen de 95%-grenzen",
        "funnel_above_95": "boven 95%-grens", "funnel_above_998": "boven 99,8%-grens",
        "funnel_below_95": "onder 95%-grens", "funnel_below_998": "onder 99,8%-grens",
        "funnel_limits_95": "95%-grenzen", "funnel_limits_998": "99,8%-grenzen",
        "funnel_unlabelled": "afwijkers zonder naam: {n}",
        "highlight": "{name}",
        "rank_title": "Ranglijsten zijn onzeker, en corrigeren verandert ze",
        "rank_xlabel": "plaats (1 = best) met 95%-marge",
        "rank_naive": "plaats op ruwe uitstroom",
        "rank_quality": "plaats op bijdrage begeleiding",
        "rank_hidden": "{n} gemeenten in het midden niet getoond",
        "waterfall_title": "{name}: verandering van de uitstroom naar werk",
        "waterfall_pair": "{start} \u2192 {end}",
        "waterfall_ylabel": "uitstroom naar werk per maand (%)",
        "waterfall_up": "verhoogt", "waterfall_down": "verlaagt",
        "waterfall_level": "werkelijke uitstroom", "waterfall_ci": "95%-marge",
        "waterfall_axis_note": "De as begint niet bij nul.",
        "component_composition": "klanten", "component_labour_market": "arbeidsmarkt",
        "component_shocks": "gebeurtenissen", "component_quality": "begeleiding",
        "component_residual": "overig",
        "event_title": "Effect van {programme} per maand sinds de start",
        "event_xlabel": "maanden sinds de start",
        "event_ylabel": "effect (procentpunt)",
    },
    "en": {
        "highlight": "{name}",
        "event_title": "Effect of {programme} by month since the start",
        "event_xlabel": "months since the start",
        "event_ylabel": "effect (percentage points)",
        "component_quality": "guidance quality",
    },
}


#: the client groups of the section "For whom does it work" (keys: the dimensions of
#: ``heterogeneity.groups``): how a dimension is named in a list ("by age, education,
#: ...") and how one of its groups is named in a sentence ({g}: the group's label, in the
#: brief's words, see :data:`impact.brief.facts.GROUP_WORDS`). Other dimensions use
#: ``_other``.
GROUP_TEXT: dict[str, dict[str, tuple[str, str]]] = {
    "nl": {
        "ladder_step": ("trede op de participatieladder", "klanten op trede {g} van de participatieladder"),
        "age": ("leeftijd", "klanten van {g} jaar"),
        "education": ("opleiding", "klanten met opleidingsniveau {g}"),
        "household": ("huishouden", "klanten met huishouden \u2018{g}\u2019"),
        "duration": ("duur in de bijstand", "klanten die {g} maanden in de bijstand zitten"),
        "prior_benefit": ("eerdere bijstand", "klanten met {g} maanden bijstand in de vijf jaar ervoor"),
        "_other": ("{dim}", "klanten in de groep \u2018{g}\u2019 ({dim})"),
    },
    "en": {
        "ladder_step": ("step on the participation ladder", "clients on step {g} of the participation ladder"),
        "age": ("age", "clients aged {g}"),
        "education": ("education", "clients with {g} education"),
        "household": ("household", "clients whose household is \u2018{g}\u2019"),
        "duration": ("time on benefit", "clients who have been on benefit for {g} months"),
        "prior_benefit": ("earlier benefit", "clients with {g} months of benefit in the five years before"),
        "_other": ("{dim}", "clients in the group \u2018{g}\u2019 ({dim})"),
    },
}

#: texts of the forest figure in the briefs (keys of impact.report.forest.DEFAULT_TEXT)
FOREST_TEXT: dict[str, dict[str, str]] = {
    "nl": {
        "title": "{what} op {outcome}, per groep klanten",
        "what_quality": "Effect van \u00e9\u00e9n punt kwaliteit",
        "what_adoption": "Effect van de aanpak",
        "outcome_work": "uitstroom naar werk",
        "outcome_education": "uitstroom naar opleiding",
        "outcome_any": "uitstroom om elke reden",
        "xlabel_quality": "procentpunt van de kans per maand op {leaving}, per punt kwaliteit",
        "xlabel_adoption": "verandering van de kans per maand op {leaving} door de aanpak "
                           "(procentpunt)",
        "leaving_work": "werk",
        "leaving_education": "een opleiding",
        "leaving_any": "uitstroom (om elke reden)",
        "dim_ladder_step": "Trede op de participatieladder bij instroom",
        "dim_age": "Leeftijd",
        "dim_education": "Opleiding",
        "dim_household": "Huishouden",
        "dim_duration": "Maanden in de bijstand",
        "dim_prior_benefit": "Eerdere bijstand (maanden in de 5 jaar ervoor)",
        "test": "verschillen de groepen? p {p}",
        "test_none": "geen toets (minder dan twee groepen getoond)",
        "unpublished": "niet getoond (minder dan {min_cell} klanten of uitstromers)",
        "legend_estimate": "schatting met {conf}%-marge",
        "legend_shrunk": "gekrompen schatting (naar het effect voor alle klanten getrokken)",
        "legend_overall": "effect voor alle klanten, met {conf}%-marge",
        "legend_zero": "geen effect",
        "legend_rw": "* anders dan nul, ook na correctie voor het toetsen van alle groepen "
                     "({method} p < {alpha})",
    },
    "en": {},
}
