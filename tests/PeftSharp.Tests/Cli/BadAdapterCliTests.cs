using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using PeftSharp.Tests.Support;

namespace PeftSharp.Tests.Cli;

/// <summary>
/// Damaged adapter files as a user's script meets them: <c>peft forward</c> and <c>peft inspect</c> exit non-zero with
/// one line on stderr naming the file, and nothing in it looks like a stack trace (no " at " frame, no "Unhandled").
/// </summary>
public class BadAdapterCliTests
{
    private static readonly string s_source = SharedPaths.Fixture("cases", "llama-lora-qv", "adapter");

    private static (long HeaderLength, JsonObject Header, byte[] Data) Split(byte[] file)
    {
        var n = (long)BinaryPrimitives.ReadUInt64LittleEndian(file);
        var header = (JsonObject)JsonNode.Parse(Encoding.UTF8.GetString(file, 8, (int)n))!;
        return (n, header, file[(8 + (int)n)..]);
    }

    private static byte[] Join(JsonObject header, byte[] data)
    {
        var text = Encoding.UTF8.GetBytes(header.ToJsonString());
        var prefix = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)text.Length);
        return [.. prefix, .. text, .. data];
    }

    private static string FirstTensor(JsonObject header) => header.Select(kv => kv.Key).First(k => k != "__metadata__");

    public static TheoryData<string> Damages() =>
    [
        "truncated", "empty", "header-length-too-large", "header-not-json", "offsets-past-end", "offsets-overlap",
        "unknown-dtype", "span-shorter-than-shape", "shape-does-not-fit-base",
    ];

    private static byte[] Damage(string kind, byte[] file)
    {
        var (_, header, data) = Split(file);
        var first = (JsonObject)header[FirstTensor(header)]!;
        switch (kind)
        {
            case "truncated": return file[..(file.Length / 2)];
            case "empty": return [];
            case "header-length-too-large":
                var big = (byte[])file.Clone();
                BinaryPrimitives.WriteUInt64LittleEndian(big, 1UL << 40);
                return big;
            case "header-not-json":
                var broken = (byte[])file.Clone();
                Encoding.UTF8.GetBytes("{\"x\": [1,").CopyTo(broken, 8);
                return broken;
            case "offsets-past-end": first["data_offsets"] = new JsonArray(0, data.Length + 4096); break;
            case "offsets-overlap":
                var copy = first.DeepClone();
                header[FirstTensor(header).Replace("q_proj", "k_proj", StringComparison.Ordinal)] = copy;
                break;
            case "unknown-dtype": first["dtype"] = "F12"; break;
            case "span-shorter-than-shape":
                var offsets = first["data_offsets"]!.AsArray();
                first["data_offsets"] = new JsonArray(offsets[0]!.GetValue<long>(), offsets[1]!.GetValue<long>() - 4);
                break;
            case "shape-does-not-fit-base":
                var shape = first["shape"]!.AsArray();
                first["shape"] = new JsonArray(shape[0]!.GetValue<long>() * 2, shape[1]!.GetValue<long>() / 2);
                break;
        }
        return Join(header, data);
    }

    [Theory]
    [MemberData(nameof(Damages))]
    public void Forward_and_inspect_reject_a_damaged_weights_file_with_one_clean_line(string kind)
    {
        var dir = Directory.CreateTempSubdirectory("peftsharp-bad-").FullName;
        try
        {
            File.Copy(Path.Combine(s_source, "adapter_config.json"), Path.Combine(dir, "adapter_config.json"));
            File.WriteAllBytes(Path.Combine(dir, "adapter_model.safetensors"), Damage(kind, File.ReadAllBytes(Path.Combine(s_source, "adapter_model.safetensors"))));
            var forward = CliRunner.Run("forward", "--model", SharedPaths.Fixture("bases", "llama"), "--adapter", dir,
                "--input-ids", SharedPaths.Fixture("inputs.json"), "--output", Path.Combine(dir, "out.safetensors"));
            // A shape that only the base model can refute passes inspect, as check_cli expects (its NEEDS_BASE).
            var runs = kind == "shape-does-not-fit-base" ? new[] { forward } : [forward, CliRunner.Run("inspect", dir, "--json")];
            foreach (var r in runs)
            {
                Assert.Equal(1, r.ExitCode);
                var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                Assert.Single(lines);
                Assert.StartsWith("error: ", lines[0]);
                Assert.Contains("adapter_", lines[0]);
                Assert.DoesNotContain(" at ", r.Stderr);
                Assert.DoesNotContain("Unhandled", r.Stderr);
            }
            Assert.False(File.Exists(Path.Combine(dir, "out.safetensors")), "no output is written for a rejected adapter");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
