using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using PeftSharp.IO.Safetensors;
using PeftSharp.Tests.Support;
using TorchSharp;

namespace PeftSharp.Tests.IO;

public class SafetensorsFuzzTests
{
    private const int Mutations = 1500;

    [Fact]
    public void Seeded_mutations_of_valid_files_either_read_or_throw_SafetensorsException()
    {
        using var dir = new TempDir();
        var seeds = SeedFiles(dir);
        var random = new Random(20240613);
        var path = dir.File("mutant.safetensors");
        int accepted = 0, rejected = 0;
        for (var i = 0; i < Mutations; i++)
        {
            var original = seeds[random.Next(seeds.Count)];
            var (kind, bytes) = Mutate(original, random);
            File.WriteAllBytes(path, bytes);
            try
            {
                using var scope = torch.NewDisposeScope();
                using var file = SafetensorsFile.Open(path);
                foreach (var entry in file.Entries)
                {
                    try
                    {
                        file.Read(entry.Name);
                    }
                    catch (SafetensorsException) when (entry.DType.ToScalarType() is null)
                    {
                        // Valid file, dtype TorchSharp cannot hold: ReadRaw must still work.
                    }
                    Assert.Equal(entry.ByteLength, file.ReadRaw(entry.Name).Length);
                }
                accepted++;
            }
            catch (SafetensorsException)
            {
                rejected++;
            }
            catch (Exception e)
            {
                Assert.Fail($"mutation #{i} ({kind}) threw {e.GetType().Name}, not SafetensorsException: {e}");
            }
        }
        // Both outcomes must occur, or the mutations are not exercising anything.
        Assert.True(accepted > 100 && rejected > 100, $"accepted {accepted}, rejected {rejected}");
    }

    private static List<byte[]> SeedFiles(TempDir dir)
    {
        using var scope = torch.NewDisposeScope();
        var mixed = dir.File("mixed.safetensors");
        SafetensorsWriter.Save(mixed, new Dictionary<string, torch.Tensor>
        {
            ["f32"] = torch.arange(6, dtype: torch.ScalarType.Float32).reshape(2, 3),
            ["f16"] = torch.ones(3, dtype: torch.ScalarType.Float16),
            ["bf16"] = torch.ones(2, 2, dtype: torch.ScalarType.BFloat16),
            ["i64"] = torch.arange(3, dtype: torch.ScalarType.Int64),
            ["i32"] = torch.arange(2, dtype: torch.ScalarType.Int32),
            ["u8"] = torch.arange(5, dtype: torch.ScalarType.Byte),
            ["i8"] = torch.zeros(1, dtype: torch.ScalarType.Int8),
            ["b"] = torch.ones(4, dtype: torch.ScalarType.Bool),
            ["s"] = torch.tensor(1.0),
            ["e"] = torch.zeros(0, 2),
        }, new Dictionary<string, string> { ["format"] = "pt" });
        var u32 = dir.File("u32.safetensors");
        File.WriteAllBytes(u32, RawSafetensors.Build("{\"w\":{\"dtype\":\"U32\",\"shape\":[2],\"data_offsets\":[0,8]},\"v\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[8,16]}}", 16));
        return
        [
            File.ReadAllBytes(mixed),
            File.ReadAllBytes(u32),
            File.ReadAllBytes(SharedPaths.Fixture("bases", "bert-seqcls", "expected.safetensors")),
            File.ReadAllBytes(SharedPaths.Fixture("cases", "llama-lora-qv", "adapter", "adapter_model.safetensors")),
        ];
    }

    private static readonly string[] s_dtypes = ["F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "F64", "U16", "U32", "U64", "F8_E4M3", "F8_E5M2", "F4", "C64", "f32", ""];

    private static (string Kind, byte[] Bytes) Mutate(byte[] original, Random random)
    {
        var bytes = (byte[])original.Clone();
        var headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        switch (random.Next(10))
        {
            case 9:
                if (bytes.Length > 8 + headerLength)
                {
                    // Data bytes carry no structure: the file must stay readable.
                    var at = 8 + headerLength + random.Next(bytes.Length - 8 - headerLength);
                    bytes[at] ^= (byte)(1 << random.Next(8));
                }
                return ("data bit flip", bytes);
            case 0:
            {
                var flips = 1 + random.Next(4);
                for (var f = 0; f < flips; f++)
                {
                    // Mostly in the prefix and header, where flips matter.
                    var at = random.Next(2) == 0 ? random.Next(Math.Min(bytes.Length, 8 + headerLength)) : random.Next(bytes.Length);
                    bytes[at] ^= (byte)(1 << random.Next(8));
                }
                return ("bit flips", bytes);
            }
            case 1:
                return ("truncation", bytes[..random.Next(bytes.Length)]);
            case 2:
            {
                ulong[] lengths = [0, 1, 7, (ulong)headerLength - 1, (ulong)headerLength + 1, (ulong)headerLength + 8, (ulong)bytes.Length, 100_000_001, ulong.MaxValue, (ulong)random.NextInt64()];
                BinaryPrimitives.WriteUInt64LittleEndian(bytes, lengths[random.Next(lengths.Length)]);
                return ("header length", bytes);
            }
            case 3:
                return ("appended junk", [.. bytes, .. Junk(random, 1 + random.Next(16))]);
            case 4:
            {
                // JSON-significant characters dropped into the header text.
                var header = bytes.AsSpan(8, headerLength);
                const string specials = "{}[],:\"\\ -01.9eE\u00ff";
                header[random.Next(header.Length)] = (byte)specials[random.Next(specials.Length)];
                return ("header byte", bytes);
            }
            default:
                return ("header json edit", EditJson(bytes, headerLength, random));
        }
    }

    private static byte[] EditJson(byte[] bytes, int headerLength, Random random)
    {
        var root = JsonNode.Parse(bytes.AsSpan(8, headerLength))!.AsObject();
        var names = root.Select(p => p.Key).Where(k => k != "__metadata__").ToList();
        if (names.Count == 0)
        {
            return bytes;
        }
        var entry = root[names[random.Next(names.Count)]]!.AsObject();
        var offsets = entry["data_offsets"]!.AsArray();
        var shape = entry["shape"]!.AsArray();
        switch (random.Next(12))
        {
            case 0: offsets[random.Next(2)] = offsets[random.Next(2)]!.GetValue<long>() + random.Next(-9, 10); break;
            case 1: offsets[random.Next(2)] = random.NextInt64(); break;
            case 2: entry["dtype"] = s_dtypes[random.Next(s_dtypes.Length)]; break;
            case 3: shape.Add(random.Next(0, 4)); break;
            case 4: if (shape.Count > 0) { shape.RemoveAt(random.Next(shape.Count)); } break;
            case 5: if (shape.Count > 0) { shape[random.Next(shape.Count)] = random.Next(-2, 5); } break;
            case 6: entry.Remove(new[] { "dtype", "shape", "data_offsets" }[random.Next(3)]); break;
            case 7: entry["shape"] = random.Next(2) == 0 ? JsonValue.Create("2") : new JsonArray(1.5); break;
            case 8: root["__metadata__"] = random.Next(2) == 0 ? new JsonArray(1) : new JsonObject { ["k"] = 3 }; break;
            case 9: offsets.Add(0); break;
            case 10: entry["data_offsets"] = new JsonArray(offsets[1]!.GetValue<long>(), offsets[0]!.GetValue<long>()); break;
            default: shape.Insert(0, (long)1 << random.Next(20, 63)); break;
        }
        var json = Encoding.UTF8.GetBytes(root.ToJsonString());
        var padded = (json.Length + 7) / 8 * 8;
        var data = bytes.AsSpan(8 + headerLength);
        var result = new byte[8 + padded + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(result, (ulong)padded);
        json.CopyTo(result, 8);
        result.AsSpan(8 + json.Length, padded - json.Length).Fill((byte)' ');
        data.CopyTo(result.AsSpan(8 + padded));
        return result;
    }

    private static byte[] Junk(Random random, int count)
    {
        var junk = new byte[count];
        random.NextBytes(junk);
        return junk;
    }
}
