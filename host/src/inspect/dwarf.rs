//! Struct layouts and runtime type descriptors from Go's DWARF, in one pass over `.debug_info`.
//!
//! Go's linker puts every type at the top level of a compile unit, named with its full import
//! path (`net/http.Request`, `*net/http.response`), members as `DW_TAG_member` children with a
//! constant `DW_AT_data_member_location`, and names inline (`DW_FORM_string`). Only the wanted
//! names are kept: a Go server has tens of thousands of type DIEs.

use std::borrow::Cow;
use std::collections::HashMap;

use gimli::{AttributeValue, EndianSlice, LittleEndian};
use object::{Object, ObjectSection};

use super::Elf;

/// `DW_AT_go_runtime_type`: Go's offset of the type's runtime descriptor from `runtime.types`.
const DW_AT_GO_RUNTIME_TYPE: gimli::DwAt = gimli::DwAt(0x2904);

#[derive(Debug)]
pub enum DwarfError {
    /// A DWARF section the walk needs is absent (the binary was built with `-w`).
    Missing(&'static str),
    Parse(String),
}

/// What the walk found of the wanted names.
#[derive(Debug, Default)]
pub struct GoTypes {
    /// Struct name -> its members (name, offset), for each wanted struct found.
    pub structs: HashMap<&'static str, Vec<(String, u64)>>,
    /// Type name -> `DW_AT_go_runtime_type`, for each wanted type that has one.
    pub runtime_types: HashMap<&'static str, u64>,
}

impl GoTypes {
    pub fn field(&self, type_name: &str, field: &str) -> Option<u64> {
        self.structs
            .get(type_name)?
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, offset)| *offset)
    }
}

/// Walks `.debug_info` once, keeping the members of `wanted_structs` and the runtime type
/// offsets of `wanted_runtime_types`.
pub fn collect_types(
    elf: &Elf<'_>,
    wanted_structs: &[&'static str],
    wanted_runtime_types: &[&'static str],
) -> Result<GoTypes, DwarfError> {
    let load = |name: &'static str| -> Result<Cow<'_, [u8]>, DwarfError> {
        let section = elf.section_by_name(name).ok_or(DwarfError::Missing(name))?;
        section
            .uncompressed_data()
            .map_err(|e| DwarfError::Parse(format!("{name}: {e}")))
    };
    let info_data = load(".debug_info")?;
    let abbrev_data = load(".debug_abbrev")?;
    // Go does not use .debug_str for type names, but other producers' tools may rewrite the file.
    let str_data = match load(".debug_str") {
        Ok(data) => data,
        Err(DwarfError::Missing(_)) => Cow::Borrowed(&[][..]),
        Err(e) => return Err(e),
    };
    let debug_info = gimli::DebugInfo::new(&info_data, LittleEndian);
    let debug_abbrev = gimli::DebugAbbrev::new(&abbrev_data, LittleEndian);
    let debug_str = gimli::DebugStr::new(&str_data, LittleEndian);

    let mut wanted: HashMap<&[u8], (Option<&'static str>, Option<&'static str>)> = HashMap::new();
    for &name in wanted_structs {
        wanted.entry(name.as_bytes()).or_default().0 = Some(name);
    }
    for &name in wanted_runtime_types {
        wanted.entry(name.as_bytes()).or_default().1 = Some(name);
    }

    let parse = |e: gimli::Error| DwarfError::Parse(e.to_string());
    let name_of = |value| string_value(value, &debug_str);

    let mut types = GoTypes::default();
    let mut units = debug_info.units();
    while let Some(header) = units.next().map_err(parse)? {
        let abbrevs = header.abbreviations(&debug_abbrev).map_err(parse)?;
        let mut cursor = header.entries(&abbrevs);
        let mut depth = 0isize;
        // The wanted struct whose members are being read, and those members.
        let mut open_struct: Option<(&'static str, Vec<(String, u64)>)> = None;
        while let Some((delta, entry)) = cursor.next_dfs().map_err(parse)? {
            depth += delta;
            if depth <= 1 {
                if let Some((name, members)) = open_struct.take() {
                    types.structs.entry(name).or_insert(members);
                }
            }
            if depth == 1 {
                let tag = entry.tag();
                if tag != gimli::DW_TAG_structure_type
                    && tag != gimli::DW_TAG_typedef
                    && tag != gimli::DW_TAG_pointer_type
                {
                    continue;
                }
                let Some(name) = entry
                    .attr_value(gimli::DW_AT_name)
                    .map_err(parse)?
                    .and_then(name_of)
                else {
                    continue;
                };
                let Some(&(as_struct, as_runtime_type)) = wanted.get(name) else {
                    continue;
                };
                if let Some(type_name) = as_runtime_type {
                    let runtime_type = entry
                        .attr_value(DW_AT_GO_RUNTIME_TYPE)
                        .map_err(parse)?
                        .and_then(|v| match v {
                            AttributeValue::Addr(a) => Some(a),
                            other => other.udata_value(),
                        });
                    if let Some(offset) = runtime_type {
                        types.runtime_types.entry(type_name).or_insert(offset);
                    }
                }
                if let Some(struct_name) = as_struct {
                    if tag == gimli::DW_TAG_structure_type
                        && !types.structs.contains_key(struct_name)
                    {
                        open_struct = Some((struct_name, Vec::new()));
                    }
                }
            } else if depth == 2 && entry.tag() == gimli::DW_TAG_member {
                let Some((_, members)) = open_struct.as_mut() else {
                    continue;
                };
                let name = entry
                    .attr_value(gimli::DW_AT_name)
                    .map_err(parse)?
                    .and_then(name_of);
                let offset = entry
                    .attr_value(gimli::DW_AT_data_member_location)
                    .map_err(parse)?
                    .and_then(|v| v.udata_value());
                if let (Some(name), Some(offset)) = (name, offset) {
                    members.push((String::from_utf8_lossy(name).into_owned(), offset));
                }
            }
        }
        if let Some((name, members)) = open_struct.take() {
            types.structs.entry(name).or_insert(members);
        }
    }
    Ok(types)
}

fn string_value<'a>(
    value: AttributeValue<EndianSlice<'a, LittleEndian>>,
    debug_str: &gimli::DebugStr<EndianSlice<'a, LittleEndian>>,
) -> Option<&'a [u8]> {
    match value {
        AttributeValue::String(s) => Some(s.slice()),
        AttributeValue::DebugStrRef(offset) => debug_str.get_str(offset).ok().map(|s| s.slice()),
        _ => None,
    }
}
