#:project ../../src/PeftSharp/PeftSharp.csproj

// Converts the F32 tensors of a safetensors file to F16 (other dtypes are copied), keeping names, shapes and
// metadata, with PeftSharp's own SafetensorsFile / SafetensorsWriter. Used for the bundled all-MiniLM-L6-v2:
//   dotnet run tools/safetensors_f16/ConvertToF16.cs -- ../shared/assets/models/all-MiniLM-L6-v2/model.safetensors \
//       assets/models/all-MiniLM-L6-v2/model.safetensors
// Refuses values beyond F16's range (|x| > 65504) and prints the largest rounding error.
using PeftSharp.IO.Safetensors;
using TorchSharp;
using static TorchSharp.torch;

if (args.Length != 2)
{
    Console.Error.WriteLine("usage: dotnet run tools/safetensors_f16/ConvertToF16.cs -- <input.safetensors> <output.safetensors>");
    return 2;
}
var (inputPath, outputPath) = (args[0], args[1]);
if (Path.GetFullPath(inputPath) == Path.GetFullPath(outputPath))
{
    Console.Error.WriteLine("the output must be another file than the input");
    return 2;
}

using var input = SafetensorsFile.Open(inputPath);
var converted = new List<KeyValuePair<string, Tensor>>();
double maxError = 0, maxRelative = 0;
long flushedToZero = 0, values = 0;
int halved = 0;
foreach (var entry in input.Entries)
{
    var tensor = input.Read(entry.Name);
    if (tensor.dtype != ScalarType.Float32)
    {
        converted.Add(new(entry.Name, tensor));
        continue;
    }
    double largest = tensor.abs().max().ToDouble();
    if (largest > 65504)
    {
        Console.Error.WriteLine($"{inputPath}: '{entry.Name}' holds {largest}, beyond F16's largest value 65504");
        return 1;
    }
    var half = tensor.to_type(ScalarType.Float16);
    using (var scope = torch.NewDisposeScope())
    {
        var back = half.to_type(ScalarType.Float32);
        var error = (back - tensor).abs();
        maxError = Math.Max(maxError, error.max().ToDouble());
        var nonzero = tensor.ne(0);
        if (nonzero.any().ToBoolean())
        {
            maxRelative = Math.Max(maxRelative, (error.masked_select(nonzero) / tensor.abs().masked_select(nonzero)).max().ToDouble());
        }
        flushedToZero += (nonzero & back.eq(0)).sum().ToInt64();
        values += tensor.numel();
    }
    tensor.Dispose();
    converted.Add(new(entry.Name, half));
    halved++;
}
SafetensorsWriter.Save(outputPath, converted, input.Metadata);
foreach (var (_, t) in converted)
{
    t.Dispose();
}
Console.WriteLine($"{outputPath}: {halved} of {input.Entries.Count} tensors F32 → F16, {new FileInfo(inputPath).Length:N0} → {new FileInfo(outputPath).Length:N0} bytes");
Console.WriteLine($"rounding: max abs error {maxError:E2}, max relative error {maxRelative:E2}, {flushedToZero} of {values:N0} non-zero values became 0");
return 0;
